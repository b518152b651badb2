
/*
 * The consistent hash ring: NGX_OMNIBUS_VNODES points per shard on
 * 0..2^32.  A shard's points depend only on its index, so adding shard n
 * moves only the topics that now land on it, and removing it restores the
 * previous mapping exactly.  Each worker keeps its own sorted copy and a
 * lookup cache, both rebuilt when the zone's ring version moves.
 */


#include <ngx_omnibus_core.h>


#define NGX_OMNIBUS_RING_CACHE  4096


static void ngx_omnibus_ring_build(ngx_omnibus_zone_t *zone);
static int ngx_libc_cdecl ngx_omnibus_point_cmp(const void *a,
    const void *b);


/*
 * Room for every shard the zone can hold, not only our max_shards: a
 * later configuration sharing the zone may add shards while we drain.
 */

ngx_int_t
ngx_omnibus_ring_init_process(ngx_omnibus_zone_t *zone, ngx_cycle_t *cycle)
{
    ngx_omnibus_ring_t  *ring;

    ring = &zone->ring;

    ring->points = ngx_palloc(cycle->pool, zone->sh->cap_shards
                                           * NGX_OMNIBUS_VNODES
                                           * sizeof(ngx_omnibus_point_t));
    if (ring->points == NULL) {
        return NGX_ERROR;
    }

    ring->cache = ngx_pcalloc(cycle->pool,
                              NGX_OMNIBUS_RING_CACHE * sizeof(*ring->cache));
    if (ring->cache == NULL) {
        return NGX_ERROR;
    }

    ring->version = 0;
    ring->npoints = 0;

    return NGX_OK;
}


static void
ngx_omnibus_ring_build(ngx_omnibus_zone_t *zone)
{
    u_char               buf[64], *p;
    ngx_uint_t           s, v, n, nshards;
    ngx_atomic_uint_t    version;
    ngx_omnibus_ring_t  *ring;

    ring = &zone->ring;

    do {
        version = zone->sh->ring_version;
        nshards = zone->sh->nshards;
        ngx_memory_barrier();
    } while (version != zone->sh->ring_version);

    n = 0;

    for (s = 0; s < nshards; s++) {
        for (v = 0; v < NGX_OMNIBUS_VNODES; v++) {
            p = ngx_sprintf(buf, "omnibus-shard-%ui-vnode-%ui", s, v);
            ring->points[n].hash = ngx_omnibus_topic_hash(buf, p - buf);
            ring->points[n].shard = s;
            n++;
        }
    }

    ngx_qsort(ring->points, n, sizeof(ngx_omnibus_point_t),
              ngx_omnibus_point_cmp);

    ngx_memzero(ring->cache, NGX_OMNIBUS_RING_CACHE * sizeof(*ring->cache));

    ring->npoints = n;
    ring->version = version;
}


static int ngx_libc_cdecl
ngx_omnibus_point_cmp(const void *a, const void *b)
{
    const ngx_omnibus_point_t  *pa = a, *pb = b;

    if (pa->hash != pb->hash) {
        return pa->hash < pb->hash ? -1 : 1;
    }

    /* equal hashes: the lower shard wins, in every worker alike */
    return (int) pa->shard - (int) pb->shard;
}


ngx_uint_t
ngx_omnibus_ring_shard(ngx_omnibus_zone_t *zone, ngx_str_t *topic)
{
    uint32_t             h;
    ngx_uint_t           lo, hi, mid, slot;
    ngx_omnibus_ring_t  *ring;

    ring = &zone->ring;

    if (ring->version != zone->sh->ring_version) {
        ngx_omnibus_ring_build(zone);
    }

    /* the shard depends on the topic's hash alone: cache by hash */

    h = ngx_omnibus_topic_hash(topic->data, topic->len);
    slot = h % NGX_OMNIBUS_RING_CACHE;

    if (ring->cache[slot].shard && ring->cache[slot].hash == h) {
        return ring->cache[slot].shard - 1;
    }

    /* the first point at or after h, wrapping to the first point */

    lo = 0;
    hi = ring->npoints;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        if (ring->points[mid].hash < h) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    if (lo == ring->npoints) {
        lo = 0;
    }

    ring->cache[slot].hash = h;
    ring->cache[slot].shard = ring->points[lo].shard + 1;

    return ring->points[lo].shard;
}
