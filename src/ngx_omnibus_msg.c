
/*
 * Message storage in the zone.  The slab allocator rounds small chunks up
 * to a power of two and large ones up to whole pages; a message is cut
 * into pieces whose sizes the allocator serves without that waste.
 */


#include "ngx_omnibus.h"


#define ngx_omnibus_msg_meta(t, c, k)                                       \
    (offsetof(ngx_omnibus_msg_t, data) + (t) + (c) + (k))

#define ngx_omnibus_seg_hdr   offsetof(ngx_omnibus_seg_t, data)


/* the size of the next chunk for "need" bytes, possibly less than need */

static size_t
ngx_omnibus_msg_chunk(size_t need)
{
    size_t  size;

    if (need >= ngx_pagesize) {
        size = ngx_align(need, ngx_pagesize);

        if (size - need <= need / 8) {
            return size;
        }

        return need & ~(ngx_pagesize - 1);
    }

    for (size = 8; size < need; size <<= 1) { /* void */ }

    if (size - need <= need / 8 || need <= 64) {
        return size;
    }

    return size >> 1;
}


ngx_omnibus_msg_t *
ngx_omnibus_msg_alloc_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_offer_t *o)
{
    u_char              *p;
    size_t               meta, size, rest, n;
    ngx_omnibus_msg_t   *msg;
    ngx_omnibus_seg_t   *seg, **next;

    meta = ngx_omnibus_msg_meta(o->topic.len, o->ctype.len, o->key.len);

    size = ngx_omnibus_msg_chunk(meta + o->payload.len);

    while (size < meta) {
        size <<= 1;
    }

    msg = ngx_omnibus_zone_alloc_locked(zone, size);
    if (msg == NULL) {
        return NULL;
    }

    msg->len = o->payload.len;
    msg->head_len = ngx_min(size - meta, o->payload.len);
    msg->topic_len = o->topic.len;
    msg->ctype_len = o->ctype.len;
    msg->key_len = o->key.len;
    msg->priority = o->priority;
    msg->shard = o->shard;
    msg->json = o->json;
    msg->refs = 1;
    msg->rseq = 0;
    msg->pending = 0;
    msg->only = 0;
    msg->owner = 0;
    msg->more = NULL;

    p = ngx_cpymem(msg->data, o->topic.data, o->topic.len);
    p = ngx_cpymem(p, o->ctype.data, o->ctype.len);
    p = ngx_cpymem(p, o->key.data, o->key.len);
    ngx_memcpy(p, o->payload.data, msg->head_len);

    next = &msg->more;
    rest = o->payload.len - msg->head_len;
    p = o->payload.data + msg->head_len;

    while (rest) {
        size = ngx_omnibus_msg_chunk(ngx_omnibus_seg_hdr + rest);

        seg = ngx_omnibus_zone_alloc_locked(zone, size);
        if (seg == NULL) {
            ngx_omnibus_msg_free_locked(zone->shpool, msg);
            return NULL;
        }

        n = ngx_min(size - ngx_omnibus_seg_hdr, rest);

        seg->next = NULL;
        seg->len = n;
        ngx_memcpy(seg->data, p, n);

        *next = seg;
        next = &seg->next;
        p += n;
        rest -= n;
    }

    return msg;
}


void
ngx_omnibus_msg_free_locked(ngx_slab_pool_t *shpool, ngx_omnibus_msg_t *msg)
{
    ngx_omnibus_seg_t  *seg, *next;

    for (seg = msg->more; seg; seg = next) {
        next = seg->next;
        ngx_slab_free_locked(shpool, seg);
    }

    ngx_slab_free_locked(shpool, msg);
}


u_char *
ngx_omnibus_msg_copy_payload(u_char *dst, ngx_omnibus_msg_t *msg)
{
    ngx_omnibus_seg_t  *seg;

    dst = ngx_cpymem(dst, msg->data + msg->topic_len + msg->ctype_len
                          + msg->key_len,
                     msg->head_len);

    for (seg = msg->more; seg; seg = seg->next) {
        dst = ngx_cpymem(dst, seg->data, seg->len);
    }

    return dst;
}
