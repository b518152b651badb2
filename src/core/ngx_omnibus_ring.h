
/*
 * The consistent hash ring that maps topics to shards.
 */


#ifndef _NGX_OMNIBUS_RING_H_INCLUDED_
#define _NGX_OMNIBUS_RING_H_INCLUDED_


#define NGX_OMNIBUS_VNODES            160
#define NGX_OMNIBUS_RING_CACHE        4096


typedef struct {
    uint32_t                    hash;
    uint32_t                    shard;
} ngx_omnibus_point_t;


/* the worker's copy of the ring, rebuilt when ring_version moves */
typedef struct {
    ngx_atomic_uint_t           version;
    ngx_uint_t                  npoints;
    ngx_omnibus_point_t        *points;
    struct {
        uint32_t                hash;
        uint32_t                shard;   /* shard + 1, 0 = empty */
    }                          *cache;
} ngx_omnibus_ring_t;


ngx_int_t ngx_omnibus_ring_init_process(ngx_omnibus_zone_t *zone,
    ngx_cycle_t *cycle);
ngx_uint_t ngx_omnibus_ring_shard(ngx_omnibus_zone_t *zone, ngx_str_t *topic);


#endif /* _NGX_OMNIBUS_RING_H_INCLUDED_ */
