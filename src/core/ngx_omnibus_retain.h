
/*
 * The retain rings: each shard keeps its dispatched messages for
 * subscribers, as a cache that the zone's allocator evicts from first.
 */


#ifndef _NGX_OMNIBUS_RETAIN_H_INCLUDED_
#define _NGX_OMNIBUS_RETAIN_H_INCLUDED_


/* past "retain", a ring holds at most this many for a slow fan-out */
#define NGX_OMNIBUS_HOLD_MAX          4096


/* a retained message copied out of the zone */
typedef struct {
    uint64_t                    born;
    uint64_t                    rseq;
    ngx_uint_t                  shard;
    ngx_uint_t                  priority;
    ngx_uint_t                  json;
    u_char                     *id;
    ngx_str_t                   topic;
    ngx_str_t                   payload;
} ngx_omnibus_copy_t;


void *ngx_omnibus_alloc_locked(ngx_omnibus_zone_t *zone, size_t size);
void ngx_omnibus_retain_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_shard_t *shard, ngx_omnibus_msg_t *msg);
void ngx_omnibus_retain_add_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_shard_t *shard, ngx_omnibus_msg_t *msg);
ngx_int_t ngx_omnibus_retain_read(ngx_omnibus_zone_t *zone, ngx_pool_t *pool,
    ngx_array_t *copies, ngx_str_t *after, ngx_str_t *pattern,
    uint64_t *cursor);


#endif /* _NGX_OMNIBUS_RETAIN_H_INCLUDED_ */
