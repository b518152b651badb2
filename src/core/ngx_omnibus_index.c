
/*
 * An index in the zone keyed by 16-byte identities (MD5 of a dedup key or
 * of a rate limit key): an rbtree on the first four bytes, ties broken by
 * the whole identity, with an LRU list beside it.
 */


#include <ngx_omnibus_core.h>


static ngx_rbtree_key_t
ngx_omnibus_index_key(u_char *identity)
{
    uint32_t  k;

    ngx_memcpy(&k, identity, sizeof(uint32_t));

    return k;
}


ngx_omnibus_node_t *
ngx_omnibus_index_lookup(ngx_rbtree_t *tree, u_char *identity)
{
    ngx_int_t            rc;
    ngx_rbtree_key_t     key;
    ngx_rbtree_node_t   *node, *sentinel;
    ngx_omnibus_node_t  *n;

    key = ngx_omnibus_index_key(identity);

    node = tree->root;
    sentinel = tree->sentinel;

    while (node != sentinel) {

        if (key != node->key) {
            node = (key < node->key) ? node->left : node->right;
            continue;
        }

        n = (ngx_omnibus_node_t *) node;

        rc = ngx_memcmp(identity, n->identity, NGX_OMNIBUS_IDENTITY_LEN);

        if (rc == 0) {
            return n;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


void
ngx_omnibus_index_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t  **p;

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            p = (ngx_memcmp(((ngx_omnibus_node_t *) node)->identity,
                            ((ngx_omnibus_node_t *) temp)->identity,
                            NGX_OMNIBUS_IDENTITY_LEN)
                 < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


void
ngx_omnibus_index_insert(ngx_rbtree_t *tree, ngx_queue_t *lru,
    ngx_omnibus_node_t *n, u_char *identity)
{
    ngx_memcpy(n->identity, identity, NGX_OMNIBUS_IDENTITY_LEN);
    n->node.key = ngx_omnibus_index_key(identity);

    ngx_rbtree_insert(tree, &n->node);
    ngx_queue_insert_head(lru, &n->queue);
}


void
ngx_omnibus_index_delete(ngx_slab_pool_t *shpool, ngx_rbtree_t *tree,
    ngx_omnibus_node_t *n)
{
    ngx_queue_remove(&n->queue);
    ngx_rbtree_delete(tree, &n->node);
    ngx_slab_free_locked(shpool, n);
}
