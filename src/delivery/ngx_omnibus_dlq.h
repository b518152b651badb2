
/*
 * The dead letter queue, as a store: entries go in, are read out as
 * copies, replayed into their shards or purged.  Rendering them is the
 * HTTP layer's.
 */


#ifndef _NGX_OMNIBUS_DLQ_H_INCLUDED_
#define _NGX_OMNIBUS_DLQ_H_INCLUDED_


#define NGX_OMNIBUS_ERROR_LEN         96


/* an entry copied out of the zone */
typedef struct {
    u_char                      id[NGX_OMNIBUS_ID_LEN];
    ngx_str_t                   topic;
    ngx_uint_t                  priority;
    ngx_omnibus_route_t        *route;       /* NULL: gone in a reload */
    ngx_uint_t                  attempts;
    ngx_str_t                   error;
    uint64_t                    failed;      /* wall clock, ms */
    ngx_str_t                   payload;
    ngx_uint_t                  json;
} ngx_omnibus_dlq_item_t;


void ngx_omnibus_dlq_add(ngx_omnibus_zone_t *zone, ngx_omnibus_msg_t *msg,
    ngx_uint_t slot, ngx_uint_t attempts, u_char *error, size_t len,
    ngx_log_t *log);
void ngx_omnibus_dlq_restore(ngx_omnibus_zone_t *zone,
    ngx_omnibus_offer_t *offer, ngx_str_t *route, ngx_uint_t attempts,
    ngx_str_t *error, uint64_t failed);
ngx_int_t ngx_omnibus_dlq_read(ngx_omnibus_zone_t *zone, ngx_pool_t *pool,
    ngx_uint_t limit, ngx_array_t *items, ngx_uint_t *size);
ngx_uint_t ngx_omnibus_dlq_purge(ngx_omnibus_zone_t *zone);
ngx_uint_t ngx_omnibus_dlq_replay(ngx_omnibus_zone_t *zone, time_t max_age,
    ngx_pool_t *pool);


#endif /* _NGX_OMNIBUS_DLQ_H_INCLUDED_ */
