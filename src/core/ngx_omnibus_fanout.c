
/*
 * The fan-out's bookkeeping.  Every dispatched message enters its shard's
 * retain ring; the owner then wakes the workers that have subscribers,
 * and each of them feeds its own from the rings, past its per-shard
 * cursor.  While a worker has subscribers the rings keep what its
 * fan-out has not fed them yet (see ngx_omnibus_retain_locked()), and the
 * zone keeps their count under its pid, so that the count of a worker
 * killed with streams open can be reclaimed.  Messages other pods
 * dispatched (relayed by the cluster backend) enter the rings here too.
 */


#include <ngx_omnibus_core.h>


static void ngx_omnibus_fanout_hold(ngx_omnibus_zone_t *zone, ngx_uint_t on);
static void ngx_omnibus_fanout_post(ngx_omnibus_zone_t *zone);
static ngx_uint_t ngx_omnibus_fanout_behind(ngx_omnibus_zone_t *zone);


ngx_int_t
ngx_omnibus_fanout_init_process(ngx_omnibus_zone_t *zone, ngx_cycle_t *cycle)
{
    ngx_queue_init(&zone->subscribers);

    zone->fanout.data = zone;
    zone->fanout.log = cycle->log;
    zone->fanout.cancelable = 1;

    zone->cursor = ngx_palloc(cycle->pool,
                              zone->sh->cap_shards * sizeof(uint64_t));
    if (zone->cursor == NULL) {
        return NGX_ERROR;
    }

    /* a crashed predecessor's hold goes; cursors start with a subscriber */
    ngx_omnibus_fanout_hold(zone, 0);
    ngx_omnibus_fanout_reclaim(zone);

    return NGX_OK;
}


static void
ngx_omnibus_fanout_hold(ngx_omnibus_zone_t *zone, ngx_uint_t on)
{
    ngx_uint_t               s, i;
    ngx_omnibus_shard_t     *shard;
    ngx_omnibus_sub_proc_t  *proc;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (s = 0; s < zone->sh->cap_shards; s++) {
        shard = &zone->sh->shards[s];

        if (on) {
            zone->cursor[s] = shard->rseq;
        }

        if (ngx_worker < NGX_OMNIBUS_HOLD_SLOTS) {
            shard->hold[ngx_worker] = on ? shard->rseq + 1 : 0;
        }
    }

    /* an entry each for at most NGX_MAX_PROCESSES live processes */

    if (on) {
        for (i = 0; i < NGX_MAX_PROCESSES; i++) {
            proc = &zone->sh->sub_procs[i];

            if (proc->pid == 0) {
                proc->pid = ngx_pid;
                proc->count = 0;
                zone->sub_proc = proc;
                zone->sh->nsub_procs++;
                break;
            }
        }

    } else if (zone->sub_proc) {
        zone->sub_proc->pid = 0;
        zone->sub_proc = NULL;
        zone->sh->nsub_procs--;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/* a subscriber of this worker starts: register before reading the rings */

void
ngx_omnibus_fanout_join(ngx_omnibus_zone_t *zone, ngx_queue_t *link)
{
    if (ngx_queue_empty(&zone->subscribers)) {
        ngx_omnibus_fanout_hold(zone, 1);
    }

    ngx_queue_insert_tail(&zone->subscribers, link);
    zone->nsubscribers++;

    if (zone->sub_proc) {
        zone->sub_proc->count = zone->nsubscribers;
    }
}


void
ngx_omnibus_fanout_leave(ngx_omnibus_zone_t *zone, ngx_queue_t *link)
{
    ngx_queue_remove(link);
    zone->nsubscribers--;

    if (zone->sub_proc) {
        zone->sub_proc->count = zone->nsubscribers;
    }

    if (zone->nsubscribers == 0) {
        ngx_omnibus_fanout_hold(zone, 0);
    }
}


/*
 * A worker killed with its streams open never left: free its entry, by
 * the same liveness test that takes over its deliveries.
 */

void
ngx_omnibus_fanout_reclaim(ngx_omnibus_zone_t *zone)
{
    ngx_uint_t               i, n;
    ngx_omnibus_sh_t        *sh;
    ngx_omnibus_sub_proc_t  *proc;

    if (!zone->subscribed) {
        return;
    }

    sh = zone->sh;
    n = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (i = 0; i < NGX_MAX_PROCESSES; i++) {
        proc = &sh->sub_procs[i];

        if (proc->pid == 0 || proc->pid == ngx_pid
            || kill(proc->pid, 0) == 0 || ngx_errno != NGX_ESRCH)
        {
            continue;
        }

        n += proc->count;
        proc->pid = 0;
        proc->count = 0;
        sh->nsub_procs--;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (n) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "omnibus zone \"%V\": %ui subscriber(s) of a worker "
                      "that is gone left the count", &zone->name, n);
    }
}


ngx_uint_t
ngx_omnibus_fanout_count(ngx_omnibus_zone_t *zone)
{
    ngx_uint_t               i, n;
    ngx_omnibus_sub_proc_t  *proc;

    n = 0;

    for (i = 0; i < NGX_MAX_PROCESSES; i++) {
        proc = &zone->sh->sub_procs[i];

        if (proc->pid) {
            n += proc->count;
        }
    }

    return n;
}


/* after a dispatch: the workers with subscribers have news */

void
ngx_omnibus_fanout_wake(ngx_omnibus_zone_t *zone)
{
    ngx_uint_t  w;

    if (zone->sh->nsub_procs == 0) {
        return;
    }

    for (w = 0; w < ngx_omnibus_workers; w++) {
        if (w != ngx_worker) {
            ngx_omnibus_notify_worker(zone, w);

        } else if (zone->nsubscribers) {
            ngx_omnibus_fanout_post(zone);
        }
    }
}


void
ngx_omnibus_fanout_feed(ngx_omnibus_zone_t *zone)
{
    if (!ngx_queue_empty(&zone->subscribers)) {
        ngx_omnibus_fanout_post(zone);
    }
}


/*
 * A round costs a write per subscriber, however few messages it carries:
 * after a round that took d, the next waits 2d after it (at most
 * NGX_OMNIBUS_FANOUT_REST_MAX), so that under a stream of publishes the
 * rounds carry more messages each, and the fan-out takes about a third
 * of the worker.  Short rounds (a few subscribers) rest not at all, and
 * a fan-out that falls behind stops resting before the rings' hold ends.
 */

static void
ngx_omnibus_fanout_post(ngx_omnibus_zone_t *zone)
{
    uint64_t  now;

    if (zone->fanout.posted) {
        return;
    }

    if (zone->fanout.timer_set) {
        if (!ngx_omnibus_fanout_behind(zone)) {
            return;
        }

        ngx_del_timer(&zone->fanout);

    } else if (zone->fanout_rest) {
        now = ngx_omnibus_now_us();

        if (now + 500 < zone->fanout_rest && !ngx_omnibus_fanout_behind(zone))
        {
            ngx_add_timer(&zone->fanout,
                          (ngx_msec_t) (zone->fanout_rest - now + 500) / 1000);
            return;
        }
    }

    zone->fanout_rest = 0;

    ngx_post_event(&zone->fanout, &ngx_posted_events);
}


/* the rings hold NGX_OMNIBUS_FANOUT_BEHIND messages not fed yet, or more */

static ngx_uint_t
ngx_omnibus_fanout_behind(ngx_omnibus_zone_t *zone)
{
    uint64_t              n;
    ngx_uint_t            s;
    ngx_omnibus_shard_t  *shard;

    n = 0;

    for (s = 0; s < zone->sh->cap_shards; s++) {
        shard = &zone->sh->shards[s];

        if (shard->rseq > zone->cursor[s]) {
            n += shard->rseq - zone->cursor[s];
        }
    }

    return n >= NGX_OMNIBUS_FANOUT_BEHIND;
}


/* a round of "n" messages began at "start" (ngx_omnibus_now_us()) */

void
ngx_omnibus_fanout_done(ngx_omnibus_zone_t *zone, uint64_t start,
    ngx_uint_t n)
{
    uint64_t  now, d;

    now = ngx_omnibus_now_us();
    d = now - start;

    if (d < NGX_OMNIBUS_FANOUT_REST_MIN || n >= NGX_OMNIBUS_FANOUT_BEHIND) {
        zone->fanout_rest = 0;
        return;
    }

    zone->fanout_rest = now + ngx_min(2 * d, NGX_OMNIBUS_FANOUT_REST_MAX);
}


/*
 * A message another pod dispatched, for this pod's subscribers only: it
 * enters the ring of the shard its topic maps to here, under its own id.
 */

ngx_int_t
ngx_omnibus_fanout_remote(ngx_omnibus_zone_t *zone, ngx_omnibus_offer_t *o,
    u_char *id, uint64_t born)
{
    ngx_omnibus_sh_t   *sh;
    ngx_omnibus_msg_t  *msg;

    sh = zone->sh;
    o->shard = ngx_omnibus_ring_shard(zone, &o->topic);

    ngx_shmtx_lock(&zone->shpool->mutex);

    while (zone->ring.version != sh->ring_version) {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        o->shard = ngx_omnibus_ring_shard(zone, &o->topic);
        ngx_shmtx_lock(&zone->shpool->mutex);
    }

    if (sh->retain == 0) {
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_DECLINED;
    }

    msg = ngx_omnibus_msg_create_locked(zone, o);
    if (msg == NULL) {
        /* no room even after evicting retained ones: our subscribers miss it */
        sh->sub_missed++;
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return NGX_ERROR;
    }

    ngx_memcpy(msg->id, id, NGX_OMNIBUS_ID_LEN);
    msg->seq = 0;
    msg->born = born;

    ngx_omnibus_retain_add_locked(zone, &sh->shards[o->shard], msg);
    ngx_omnibus_msg_unref_locked(zone->shpool, msg);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return NGX_OK;
}
