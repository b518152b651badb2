
/*
 * The retain rings.  Every dispatched message enters its shard's ring
 * with a ring sequence number (rseq), for subscribers: the fan-out of
 * each worker reads past its cursors, and resuming subscribers read from
 * a message id.  The rings are a cache: the zone's allocator makes room
 * by evicting their oldest messages before a publish would get 503.
 */


#include <ngx_omnibus_core.h>


static ngx_uint_t ngx_omnibus_retain_held(ngx_omnibus_shard_t *shard,
    uint64_t rseq);
static ngx_uint_t ngx_omnibus_retain_evict_locked(ngx_omnibus_zone_t *zone);
static ngx_inline ngx_uint_t ngx_omnibus_retain_after(ngx_omnibus_msg_t *msg,
    ngx_uint_t own, ngx_uint_t remote, uint64_t from, uint64_t born);
static int ngx_libc_cdecl ngx_omnibus_copy_cmp(const void *a, const void *b);


void *
ngx_omnibus_alloc_locked(ngx_omnibus_zone_t *zone, size_t size)
{
    void  *p;

    for ( ;; ) {
        p = ngx_slab_alloc_locked(zone->shpool, size);

        if (p != NULL || ngx_omnibus_retain_evict_locked(zone) == 0) {
            return p;
        }
    }
}


void
ngx_omnibus_retain_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_shard_t *shard, ngx_omnibus_msg_t *msg)
{
    if (zone->sh->retain == 0 || msg->rseq) {
        return;
    }

    ngx_omnibus_retain_add_locked(zone, shard, msg);

    /* the other pods' subscribers get it too, once: not when retried */

    if (ngx_omnibus_cluster_has(zone, NGX_OMNIBUS_CLUSTER_FANOUT)) {
        zone->cluster->relay(zone, msg);
    }
}


void
ngx_omnibus_retain_add_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_shard_t *shard, ngx_omnibus_msg_t *msg)
{
    ngx_queue_t        *q;
    ngx_omnibus_msg_t  *old;

    msg->rseq = ++shard->rseq;
    msg->refs++;

    ngx_queue_insert_tail(&shard->retain, &msg->rlink);
    shard->retained++;

    /*
     * Past "retain" the oldest goes, unless a worker's fan-out has not
     * fed it to its subscribers yet: a burst must not overtake them.
     * That hold is bounded, and memory pressure evicts held ones too.
     */

    while (shard->retained > zone->sh->retain) {
        q = ngx_queue_head(&shard->retain);
        old = ngx_queue_data(q, ngx_omnibus_msg_t, rlink);

        if (ngx_omnibus_retain_held(shard, old->rseq)) {
            if (shard->retained <= zone->sh->retain + NGX_OMNIBUS_HOLD_MAX) {
                break;
            }

            zone->sh->sub_missed++;
        }

        ngx_queue_remove(q);
        shard->retained--;

        ngx_omnibus_msg_unref_locked(zone->shpool, old);
    }
}


/* a worker with subscribers has not fed this message to them yet */

static ngx_uint_t
ngx_omnibus_retain_held(ngx_omnibus_shard_t *shard, uint64_t rseq)
{
    ngx_uint_t  w;

    for (w = 0; w < ngx_min(ngx_omnibus_workers, NGX_OMNIBUS_HOLD_SLOTS); w++)
    {
        if (shard->hold[w] && shard->hold[w] - 1 < rseq) {
            return 1;
        }
    }

    return 0;
}


/* frees the oldest retained message of the fullest ring; 0 if none */

static ngx_uint_t
ngx_omnibus_retain_evict_locked(ngx_omnibus_zone_t *zone)
{
    ngx_uint_t            i;
    ngx_queue_t          *q;
    ngx_omnibus_sh_t     *sh;
    ngx_omnibus_msg_t    *msg;
    ngx_omnibus_shard_t  *shard, *fullest;

    sh = zone->sh;
    fullest = NULL;

    for (i = 0; i < sh->cap_shards; i++) {
        shard = &sh->shards[i];

        if (shard->retained && (fullest == NULL
                                || shard->retained > fullest->retained))
        {
            fullest = shard;
        }
    }

    if (fullest == NULL) {
        return 0;
    }

    q = ngx_queue_head(&fullest->retain);
    msg = ngx_queue_data(q, ngx_omnibus_msg_t, rlink);

    ngx_queue_remove(q);
    fullest->retained--;
    sh->evicted_retained++;

    if (ngx_omnibus_retain_held(fullest, msg->rseq)) {
        sh->sub_missed++;
    }

    ngx_omnibus_msg_unref_locked(zone->shpool, msg);

    return 1;
}


/*
 * Copies retained messages matching "pattern" out of the zone.  With
 * "cursor" (per shard): those past the cursors, which move, and so does
 * this worker's hold.  With "after": those after that message (by time
 * across shards, by ring order in its own shard), or all retained when
 * it is gone.  With neither: nothing.  Sorted by time, then shard, then
 * ring order.
 */

ngx_int_t
ngx_omnibus_retain_read(ngx_omnibus_zone_t *zone, ngx_pool_t *pool,
    ngx_array_t *copies, ngx_str_t *after, ngx_str_t *pattern,
    uint64_t *cursor)
{
    u_char               *p;
    uint64_t              seq, from, born;
    ngx_uint_t            s, i, as, remote;
    ngx_queue_t          *q;
    ngx_omnibus_sh_t     *sh;
    ngx_omnibus_msg_t    *msg;
    ngx_omnibus_copy_t   *c;
    ngx_omnibus_shard_t  *shard;

    sh = zone->sh;
    as = NGX_OMNIBUS_MAX_SHARDS;
    seq = 0;
    born = 0;
    from = 0;
    remote = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    /*
     * The id's own shard first; a message of another pod (relayed by the
     * cluster) is in the ring its topic maps to here: any of them.
     */

    if (after && ngx_omnibus_msg_id_parse(after, &as, &seq) == NGX_OK) {
        for (s = 0; s <= sh->cap_shards && from == 0; s++) {
            i = (s == 0) ? as : s - 1;

            if (i >= sh->cap_shards || (s && i == as)) {
                continue;
            }

            shard = &sh->shards[i];

            for (q = ngx_queue_head(&shard->retain);
                 q != ngx_queue_sentinel(&shard->retain);
                 q = ngx_queue_next(q))
            {
                msg = ngx_queue_data(q, ngx_omnibus_msg_t, rlink);

                if (ngx_strncmp(msg->id, after->data, NGX_OMNIBUS_ID_LEN)
                    == 0)
                {
                    from = msg->rseq;
                    born = msg->born;
                    remote = (msg->seq == 0);
                    as = i;
                    break;
                }
            }
        }

        if (from == 0) {
            as = NGX_OMNIBUS_MAX_SHARDS;
        }
    }

    for (s = 0; s < sh->cap_shards; s++) {
        shard = &sh->shards[s];

        if (cursor) {
            if (shard->rseq <= cursor[s]) {
                continue;
            }

            from = cursor[s];
            cursor[s] = shard->rseq;

            if (ngx_worker < NGX_OMNIBUS_HOLD_SLOTS) {
                shard->hold[ngx_worker] = cursor[s] + 1;
            }

        } else if (after == NULL) {
            continue;
        }

        /*
         * The fan-out walks back to the first message past its cursor; a
         * resume looks at the whole ring, which is short: with other
         * pods' messages a ring is in arrival order, not publish order.
         */

        q = ngx_queue_sentinel(&shard->retain);

        if (cursor) {
            for (q = ngx_queue_last(&shard->retain);
                 q != ngx_queue_sentinel(&shard->retain);
                 q = ngx_queue_prev(q))
            {
                msg = ngx_queue_data(q, ngx_omnibus_msg_t, rlink);

                if (msg->rseq <= from) {
                    break;
                }
            }
        }

        for (q = ngx_queue_next(q);
             q != ngx_queue_sentinel(&shard->retain);
             q = ngx_queue_next(q))
        {
            msg = ngx_queue_data(q, ngx_omnibus_msg_t, rlink);

            if (cursor == NULL
                && !ngx_omnibus_retain_after(msg, s == as, remote, from,
                                             born))
            {
                continue;
            }

            if (!ngx_omnibus_pattern_match(pattern,
                                           ngx_omnibus_msg_topic(msg),
                                           msg->topic_len))
            {
                continue;
            }

            c = ngx_array_push(copies);
            p = ngx_pnalloc(pool, NGX_OMNIBUS_ID_LEN + msg->topic_len
                                  + msg->len);
            if (c == NULL || p == NULL) {
                ngx_shmtx_unlock(&zone->shpool->mutex);
                return NGX_ERROR;
            }

            c->born = msg->born;
            c->rseq = msg->rseq;
            c->shard = s;
            c->priority = msg->priority;
            c->json = msg->json;
            c->id = p;
            p = ngx_cpymem(p, msg->id, NGX_OMNIBUS_ID_LEN);
            c->topic.data = p;
            c->topic.len = msg->topic_len;
            p = ngx_cpymem(p, ngx_omnibus_msg_topic(msg), msg->topic_len);
            c->payload.data = p;
            c->payload.len = msg->len;
            ngx_omnibus_msg_copy_payload(p, msg);
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (copies->nelts > 1) {
        ngx_qsort(copies->elts, copies->nelts, sizeof(ngx_omnibus_copy_t),
                  ngx_omnibus_copy_cmp);
    }

    return NGX_OK;
}


/*
 * Whether a resume after the message (from, born) includes msg: in that
 * message's own ring (own), what came after it; in the others, what was
 * published since.  A message of another pod entered its ring when it
 * arrived, after this pod's newer ones maybe: those come too (a resume
 * across pods may repeat a message, never skip one).
 */

static ngx_inline ngx_uint_t
ngx_omnibus_retain_after(ngx_omnibus_msg_t *msg, ngx_uint_t own,
    ngx_uint_t remote, uint64_t from, uint64_t born)
{
    if (own) {
        return msg->rseq > from || (remote && msg->born > born);
    }

    return msg->born >= born;
}


static int ngx_libc_cdecl
ngx_omnibus_copy_cmp(const void *a, const void *b)
{
    const ngx_omnibus_copy_t  *ca = a, *cb = b;

    if (ca->born != cb->born) {
        return ca->born < cb->born ? -1 : 1;
    }

    if (ca->shard != cb->shard) {
        return ca->shard < cb->shard ? -1 : 1;
    }

    return ca->rseq < cb->rseq ? -1 : (ca->rseq > cb->rseq);
}
