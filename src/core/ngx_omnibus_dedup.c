
/*
 * Idempotency: an rbtree of MD5 identities in the zone, each remembering
 * the id it was first queued under until dedup_ttl passes.  Entries are
 * kept in arrival order, which with one TTL is also expiry order.
 */


#include <ngx_omnibus_core.h>


typedef struct {
    ngx_omnibus_node_t  index;
    time_t              expires;
    ngx_pid_t           pending;     /* storing its row (mode=sync), or 0 */
    u_char              id[NGX_OMNIBUS_ID_LEN];
} ngx_omnibus_dedup_node_t;


static void ngx_omnibus_dedup_expire_locked(ngx_omnibus_zone_t *zone,
    ngx_uint_t n);


void
ngx_omnibus_dedup_identity(ngx_omnibus_offer_t *offer, ngx_uint_t mode)
{
    ngx_md5_t  md5;

    offer->dedup_on = 0;

    if (mode == NGX_OMNIBUS_DEDUP_OFF) {
        return;
    }

    ngx_md5_init(&md5);

    if (offer->key.len) {
        ngx_md5_update(&md5, "key", 4);
        ngx_md5_update(&md5, offer->key.data, offer->key.len);

    } else if (mode == NGX_OMNIBUS_DEDUP_CONTENT) {
        ngx_md5_update(&md5, "content", 8);
        ngx_md5_update(&md5, offer->topic.data, offer->topic.len);
        ngx_md5_update(&md5, "", 1);
        ngx_md5_update(&md5, offer->payload.data, offer->payload.len);

    } else {
        return;
    }

    ngx_md5_final(offer->dedup, &md5);
    offer->dedup_on = 1;
}


ngx_int_t
ngx_omnibus_dedup_find_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_offer_t *offer, u_char *id)
{
    ngx_omnibus_dedup_node_t  *dn;

    dn = (ngx_omnibus_dedup_node_t *)
             ngx_omnibus_index_lookup(&zone->sh->dedup, offer->dedup);

    if (dn == NULL) {
        return NGX_DECLINED;
    }

    if (dn->expires <= ngx_time()) {
        ngx_omnibus_index_delete(zone->shpool, &zone->sh->dedup, &dn->index);
        zone->sh->dedup_entries--;
        return NGX_DECLINED;
    }

    ngx_memcpy(id, dn->id, NGX_OMNIBUS_ID_LEN);

    /*
     * The first publish of the key waits for its row: whether that id
     * will be accepted is not known yet (NGX_AGAIN), unless the worker
     * that stores it is gone (its message goes on, see unhold).
     */

    if (dn->pending) {
        if (kill(dn->pending, 0) == 0 || ngx_errno != NGX_ESRCH) {
            return NGX_AGAIN;
        }

        dn->pending = 0;
    }

    return NGX_OK;
}


ngx_int_t
ngx_omnibus_dedup_insert_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_offer_t *offer, u_char *id)
{
    ngx_omnibus_sh_t          *sh;
    ngx_omnibus_dedup_node_t  *dn;

    sh = zone->sh;

    ngx_omnibus_dedup_expire_locked(zone, 2);

    dn = ngx_slab_alloc_locked(zone->shpool,
                               sizeof(ngx_omnibus_dedup_node_t));
    if (dn == NULL) {
        ngx_omnibus_dedup_expire_locked(zone, NGX_MAX_UINT32_VALUE);

        dn = ngx_omnibus_alloc_locked(zone, sizeof(ngx_omnibus_dedup_node_t));
        if (dn == NULL) {
            return NGX_ERROR;
        }
    }

    dn->expires = ngx_time() + zone->dedup_ttl;
    dn->pending = offer->hold ? ngx_pid : 0;
    ngx_memcpy(dn->id, id, NGX_OMNIBUS_ID_LEN);

    ngx_omnibus_index_insert(&sh->dedup, &sh->dedup_lru, &dn->index,
                             offer->dedup);
    sh->dedup_entries++;

    return NGX_OK;
}


/*
 * A held publish is settled: accepted (its identity now answers
 * duplicates), or refused after all (the identity is free again), if the
 * identity is still its.
 */

void
ngx_omnibus_dedup_settle_locked(ngx_omnibus_zone_t *zone, u_char *identity,
    u_char *id, ngx_uint_t accepted)
{
    ngx_omnibus_dedup_node_t  *dn;

    dn = (ngx_omnibus_dedup_node_t *)
             ngx_omnibus_index_lookup(&zone->sh->dedup, identity);

    if (dn == NULL || ngx_memcmp(dn->id, id, NGX_OMNIBUS_ID_LEN) != 0) {
        return;
    }

    if (accepted) {
        dn->pending = 0;
        return;
    }

    ngx_omnibus_index_delete(zone->shpool, &zone->sh->dedup, &dn->index);
    zone->sh->dedup_entries--;
}


/*
 * The cluster knew the identity first, under another id: the identity
 * answers duplicates with that one from now on, here too.
 */

void
ngx_omnibus_dedup_redirect_locked(ngx_omnibus_zone_t *zone,
    u_char *identity, u_char *id, u_char *first)
{
    ngx_omnibus_dedup_node_t  *dn;

    dn = (ngx_omnibus_dedup_node_t *)
             ngx_omnibus_index_lookup(&zone->sh->dedup, identity);

    if (dn == NULL || ngx_memcmp(dn->id, id, NGX_OMNIBUS_ID_LEN) != 0) {
        return;
    }

    ngx_memcpy(dn->id, first, NGX_OMNIBUS_ID_LEN);
    dn->pending = 0;
}


static void
ngx_omnibus_dedup_expire_locked(ngx_omnibus_zone_t *zone, ngx_uint_t n)
{
    time_t                     now;
    ngx_queue_t               *q;
    ngx_omnibus_sh_t          *sh;
    ngx_omnibus_dedup_node_t  *dn;

    sh = zone->sh;
    now = ngx_time();

    while (n-- && !ngx_queue_empty(&sh->dedup_lru)) {
        q = ngx_queue_last(&sh->dedup_lru);
        dn = (ngx_omnibus_dedup_node_t *)
                 ngx_queue_data(q, ngx_omnibus_node_t, queue);

        if (dn->expires > now) {
            return;
        }

        ngx_omnibus_index_delete(zone->shpool, &sh->dedup, &dn->index);
        sh->dedup_entries--;
    }
}
