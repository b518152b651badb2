
/*
 * An index in the zone keyed by 16-byte identities, with an LRU beside.
 */


#ifndef _NGX_OMNIBUS_INDEX_H_INCLUDED_
#define _NGX_OMNIBUS_INDEX_H_INCLUDED_


#define NGX_OMNIBUS_IDENTITY_LEN      16


/* the head of every node of an identity index */
typedef struct {
    ngx_rbtree_node_t           node;
    ngx_queue_t                 queue;       /* LRU, newest at the head */
    u_char                      identity[NGX_OMNIBUS_IDENTITY_LEN];
} ngx_omnibus_node_t;


ngx_omnibus_node_t *ngx_omnibus_index_lookup(ngx_rbtree_t *tree,
    u_char *identity);
void ngx_omnibus_index_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
void ngx_omnibus_index_insert(ngx_rbtree_t *tree, ngx_queue_t *lru,
    ngx_omnibus_node_t *n, u_char *identity);
void ngx_omnibus_index_delete(ngx_slab_pool_t *shpool, ngx_rbtree_t *tree,
    ngx_omnibus_node_t *n);


#endif /* _NGX_OMNIBUS_INDEX_H_INCLUDED_ */
