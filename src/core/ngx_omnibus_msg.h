
/*
 * A message in the zone, and its id.
 *
 * A queued message lives in slab chunks: the head holds the metadata and
 * the first bytes, continuation segments hold the rest.  Splitting avoids
 * the power-of-two rounding that would double a 1 KiB message.
 */


#ifndef _NGX_OMNIBUS_MSG_H_INCLUDED_
#define _NGX_OMNIBUS_MSG_H_INCLUDED_


/*
 * An id is <zone creation ms: 12 hex><random: 8 hex>-<shard: 4 hex>-
 * <seq: 10 hex>: unique across restarts and pods, sorted by sequence
 * within a shard of one zone.
 */
#define NGX_OMNIBUS_ID_LEN            36
#define NGX_OMNIBUS_ID_SHARD          21
#define NGX_OMNIBUS_ID_SHARD_LEN      4
#define NGX_OMNIBUS_ID_SEQ            26
#define NGX_OMNIBUS_ID_SEQ_SPAN       ((uint64_t) 1 << 40)


typedef struct ngx_omnibus_seg_s  ngx_omnibus_seg_t;

struct ngx_omnibus_seg_s {
    ngx_omnibus_seg_t          *next;
    uint32_t                    len;
    u_char                      data[1];
};


/*
 * A message is referenced by its queue or the in-flight list, by the
 * retain ring and by dead letter entries; it is freed with the last one.
 */

typedef struct {
    ngx_queue_t                 queue;       /* shard queue or in flight */
    ngx_queue_t                 rlink;       /* retain ring */
    uint64_t                    seq;
    uint64_t                    rseq;        /* position in the retain ring */
    uint64_t                    born;        /* wall clock, ms */
    uint64_t                    dispatched;  /* monotonic, us */
    uint64_t                    pending;     /* route slots to deliver to */
    uint64_t                    only;        /* replayed: these slots only */
    uint64_t                    starved;     /* slots waiting for a job */
    ngx_omnibus_seg_t          *more;
    ngx_pid_t                   owner;       /* the worker delivering it */
    uint32_t                    len;         /* payload bytes */
    uint32_t                    head_len;    /* payload bytes in the head */
    uint16_t                    shard;
    uint16_t                    refs;
    u_char                      topic_len;
    u_char                      ctype_len;
    u_char                      key_len;
    u_char                      priority;
    u_char                      json;        /* validated JSON payload */
    u_char                      held;        /* until its row commits */
    u_char                      id[NGX_OMNIBUS_ID_LEN];
    u_char                      data[1];     /* topic ctype key payload */
} ngx_omnibus_msg_t;

#define ngx_omnibus_msg_topic(m)    ((m)->data)
#define ngx_omnibus_msg_ctype(m)    ((m)->data + (m)->topic_len)
#define ngx_omnibus_msg_key(m)                                              \
    ((m)->data + (m)->topic_len + (m)->ctype_len)
#define ngx_omnibus_msg_head(m)                                             \
    ((m)->data + (m)->topic_len + (m)->ctype_len + (m)->key_len)

#define ngx_omnibus_msg_meta(t, c, k)                                       \
    (offsetof(ngx_omnibus_msg_t, data) + (t) + (c) + (k))
#define ngx_omnibus_seg_hdr   offsetof(ngx_omnibus_seg_t, data)


/* one message offered to the queue, before it is in the zone */
typedef struct {
    ngx_str_t                   topic;
    ngx_str_t                   ctype;
    ngx_str_t                   key;         /* idempotency key as given */
    ngx_str_t                   payload;
    u_char                      dedup[NGX_OMNIBUS_IDENTITY_LEN];
    unsigned                    dedup_on:1;
    unsigned                    json:1;
    unsigned                    hold:1;      /* not dispatched until let go */
    unsigned                    force:1;     /* a load: no backpressure/dedup */
    ngx_uint_t                  priority;
    ngx_uint_t                  shard;
    u_char                     *id;          /* given (a load), or NULL */
    ngx_omnibus_msg_t          *held;        /* out: the message held */
} ngx_omnibus_offer_t;


void ngx_omnibus_msg_id(u_char *id, uint64_t instance, uint32_t rand,
    ngx_uint_t shard, uint64_t seq);
ngx_int_t ngx_omnibus_msg_id_parse(ngx_str_t *id, ngx_uint_t *shard,
    uint64_t *seq);
void ngx_omnibus_msg_free_locked(ngx_slab_pool_t *shpool,
    ngx_omnibus_msg_t *msg);
void ngx_omnibus_msg_unref_locked(ngx_slab_pool_t *shpool,
    ngx_omnibus_msg_t *msg);
u_char *ngx_omnibus_msg_copy_payload(u_char *dst, ngx_omnibus_msg_t *msg);


/*
 * The size of the next chunk for "need" bytes, possibly less than need.
 * The slab allocator rounds small chunks up to a power of two and large
 * ones up to whole pages; a message is cut into pieces whose sizes the
 * allocator serves without that waste.
 */

static ngx_inline size_t
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


#endif /* _NGX_OMNIBUS_MSG_H_INCLUDED_ */
