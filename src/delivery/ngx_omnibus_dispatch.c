
/*
 * The shard worker loop.  Worker w owns the shards s with
 * s mod worker_processes == w and drains them when woken: the high queue
 * first, a bounded batch per turn so one busy shard cannot starve the
 * event loop, and no more messages in flight than the shard's window.
 * Each message goes to the retain ring (for subscribers) and to the
 * deliveries of every route that matches its topic.
 */


#include <ngx_omnibus_delivery.h>


#define NGX_OMNIBUS_DISPATCH_BATCH   64
#define NGX_OMNIBUS_DISPATCH_TURN    1024
#define NGX_OMNIBUS_SWEEP_INTERVAL   1000


static void ngx_omnibus_dispatch_all(void);
static void ngx_omnibus_dispatch_zone(ngx_event_t *ev);
static void ngx_omnibus_dispatch_sweep(ngx_event_t *ev);
static void ngx_omnibus_dispatch_recover(ngx_omnibus_zone_t *zone);
static void ngx_omnibus_dispatch_starved(ngx_omnibus_zone_t *zone);


static ngx_omnibus_main_conf_t  *ngx_omnibus_dispatch_conf;
static ngx_event_t               ngx_omnibus_sweep_event;


ngx_int_t
ngx_omnibus_dispatch_init_process(ngx_cycle_t *cycle,
    ngx_omnibus_main_conf_t *omcf)
{
    ngx_uint_t           i;
    ngx_omnibus_zone_t  **zones, *zone;

    ngx_omnibus_dispatch_conf = omcf;

    if (ngx_omnibus_notify_init_process(cycle, omcf, ngx_omnibus_dispatch_all)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    zones = omcf->zones.elts;

    for (i = 0; i < omcf->zones.nelts; i++) {
        zone = zones[i];

        zone->dispatch.handler = ngx_omnibus_dispatch_zone;
        zone->dispatch.data = zone;
        zone->dispatch.log = cycle->log;

        if (ngx_omnibus_ring_init_process(zone, cycle) != NGX_OK
            || ngx_omnibus_route_init_process(zone, cycle) != NGX_OK
            || ngx_omnibus_fanout_init_process(zone, cycle) != NGX_OK
            || ngx_omnibus_scale_init_process(zone, cycle) != NGX_OK)
        {
            return NGX_ERROR;
        }

        /* what a crashed predecessor had in flight is ours to redo */
        ngx_omnibus_dispatch_recover(zone);
    }

    /* NGINX's debug log reads every timer's data as a connection */
    ngx_omnibus_sweep_event.handler = ngx_omnibus_dispatch_sweep;
    ngx_omnibus_sweep_event.data = omcf;
    ngx_omnibus_sweep_event.log = cycle->log;
    ngx_omnibus_sweep_event.cancelable = 1;

    ngx_add_timer(&ngx_omnibus_sweep_event, NGX_OMNIBUS_SWEEP_INTERVAL);

    /* what was queued while this worker slot was empty is ours now */
    ngx_omnibus_dispatch_all();

    return NGX_OK;
}


/* deliveries left unfinished go back to their queues for a successor */

void
ngx_omnibus_dispatch_exit_process(void)
{
    ngx_uint_t           i, s, n;
    ngx_omnibus_sh_t    *sh;
    ngx_omnibus_zone_t  **zones, *zone;

    if (ngx_omnibus_dispatch_conf == NULL) {
        return;
    }

    ngx_omnibus_job_exit_process();

    zones = ngx_omnibus_dispatch_conf->zones.elts;

    for (i = 0; i < ngx_omnibus_dispatch_conf->zones.nelts; i++) {
        zone = zones[i];
        sh = zone->sh;

        if (zone->dispatch.posted) {
            ngx_delete_posted_event(&zone->dispatch);
        }

        ngx_omnibus_route_exit_process(zone);

        n = 0;

        ngx_shmtx_lock(&zone->shpool->mutex);

        for (s = 0; s < sh->cap_shards; s++) {
            n += ngx_omnibus_requeue_locked(&sh->shards[s], ngx_pid);
        }

        ngx_shmtx_unlock(&zone->shpool->mutex);

        if (n) {
            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                          "omnibus zone \"%V\": %ui message(s) with "
                          "deliveries left went back to their queues",
                          &zone->name, n);
        }
    }

    ngx_omnibus_notify_exit_process();
}


static void
ngx_omnibus_dispatch_recover(ngx_omnibus_zone_t *zone)
{
    ngx_uint_t         s, n, held;
    ngx_omnibus_sh_t  *sh;

    sh = zone->sh;
    n = 0;
    held = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (s = 0; s < sh->cap_shards; s++) {
        if (ngx_omnibus_shard_owner(s) != ngx_worker) {
            continue;
        }

        if (!ngx_queue_empty(&sh->shards[s].inflight)) {
            n += ngx_omnibus_requeue_locked(&sh->shards[s], 0);
        }

        /* a worker gone while a commit or a cluster claim was awaited */

        if ((zone->store && zone->store->sync)
            || ngx_omnibus_cluster_has(zone, NGX_OMNIBUS_CLUSTER_DEDUP))
        {
            held += ngx_omnibus_queue_unhold_locked(zone, &sh->shards[s]);
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (n) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "omnibus zone \"%V\": %ui message(s) in flight for a "
                      "worker that is gone are queued again", &zone->name, n);
    }

    if (held) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "omnibus zone \"%V\": %ui message(s) held for their "
                      "rows by a worker that is gone go on", &zone->name,
                      held);
    }
}


/* woken: our shards may have news, and our subscribers too */

static void
ngx_omnibus_dispatch_all(void)
{
    ngx_uint_t           i;
    ngx_omnibus_zone_t  **zones;

    zones = ngx_omnibus_dispatch_conf->zones.elts;

    for (i = 0; i < ngx_omnibus_dispatch_conf->zones.nelts; i++) {
        ngx_post_event(&zones[i]->dispatch, &ngx_posted_events);
        ngx_omnibus_fanout_feed(zones[i]);
    }
}


static ngx_uint_t
ngx_omnibus_dispatch_shard(ngx_omnibus_zone_t *zone, ngx_uint_t s,
    ngx_omnibus_shard_t *shard, ngx_uint_t budget)
{
    uint64_t             now, mask, limit, masks[NGX_OMNIBUS_DISPATCH_BATCH];
    ngx_uint_t           i, n, k, done, window;
    ngx_omnibus_sh_t    *sh;
    ngx_omnibus_msg_t   *msg, *batch[NGX_OMNIBUS_DISPATCH_BATCH];

    sh = zone->sh;
    now = ngx_omnibus_now_ms();

    /* deliveries run ahead of the slowest route by this much at most */
    window = 2 * ngx_max(shard->concurrency, zone->route_concurrency);

    done = 0;

    while (done < budget && shard->queued && !shard->paused
           && shard->ninflight < window)
    {
        k = 0;

        ngx_shmtx_lock(&zone->shpool->mutex);

        /*
         * Per-topic order across a reload: the worker we replaced has
         * messages of this shard it may yet hand back to the queue front.
         * It adds none while we run, so the first batch decides.  Nor
         * does anything go out ahead of messages still owed a job.
         */

        if (zone->ordered && done == 0
            && (zone->starved
                || ngx_omnibus_inflight_elsewhere_locked(shard)))
        {
            ngx_shmtx_unlock(&zone->shpool->mutex);
            break;
        }

        limit = ngx_omnibus_fence_limit(zone, s);

        for (n = 0; n < NGX_OMNIBUS_DISPATCH_BATCH
                    && shard->ninflight < window; n++)
        {
            msg = ngx_omnibus_dequeue_locked(zone, shard, limit);
            if (msg == NULL) {
                break;
            }

            ngx_omnibus_histogram_observe(&sh->age,
                                    (now > msg->born ? now - msg->born : 0)
                                    * 1000);

            shard->dispatched++;

            ngx_omnibus_retain_locked(zone, shard, msg);

            /* a message queued again keeps what it still owes */
            mask = msg->pending;

            if (mask == 0) {
                mask = ngx_omnibus_route_match(zone, msg);

                if (msg->only) {
                    mask &= msg->only;
                }
            }

            if (mask == 0) {
                sh->unrouted++;

                if (zone->store) {
                    zone->store->done(zone, msg);
                }

                ngx_omnibus_msg_unref_locked(zone->shpool, msg);
                continue;
            }

            msg->pending = mask;
            msg->owner = ngx_pid;
            msg->dispatched = ngx_omnibus_now_us();

            ngx_queue_insert_tail(&shard->inflight, &msg->queue);
            shard->ninflight++;

            batch[k] = msg;
            masks[k] = mask;
            k++;
        }

        ngx_shmtx_unlock(&zone->shpool->mutex);

        ngx_log_debug4(NGX_LOG_DEBUG_EVENT, ngx_cycle->log, 0,
                       "omnibus dispatch: zone \"%V\" shard %ui, %ui taken, "
                       "%ui to routes", &zone->name, s, n, k);

        for (i = 0; i < k; i++) {
            ngx_omnibus_job_start(zone, batch[i], masks[i]);
        }

        if (n == 0) {
            break;
        }

        done += n;
    }

    return done;
}


static void
ngx_omnibus_dispatch_zone(ngx_event_t *ev)
{
    ngx_uint_t            s, budget, done, lifted, pass;
    ngx_omnibus_sh_t     *sh;
    ngx_omnibus_zone_t   *zone;
    ngx_omnibus_shard_t  *shard;

    zone = ev->data;
    sh = zone->sh;

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    if (sh->fence) {
        ngx_shmtx_lock(&zone->shpool->mutex);
        lifted = ngx_omnibus_fence_check_locked(zone, ev->log);
        ngx_shmtx_unlock(&zone->shpool->mutex);

        if (lifted) {
            ngx_omnibus_notify_all(zone);
        }
    }

    budget = NGX_OMNIBUS_DISPATCH_TURN;
    done = 0;

    /*
     * Publishers, and owners feeding our subscribers, do not wake us
     * while the flag is up.  It goes down only once the shards are
     * drained; then a second pass takes what was queued meanwhile and a
     * fan-out run what was retained meanwhile.  What comes after wakes
     * us again.
     */

    for (pass = 0; pass < 2; pass++) {

        for (s = 0; s < sh->cap_shards; s++) {
            shard = &sh->shards[s];

            if (ngx_omnibus_shard_owner(s) != ngx_worker
                || shard->queued == 0 || shard->paused)
            {
                continue;
            }

            done += ngx_omnibus_dispatch_shard(zone, s, shard,
                                               budget - done);

            if (done == budget) {
                /* yield to other events, then go on */
                ngx_post_event(ev, &ngx_posted_events);
                goto fed;
            }
        }

        if (pass == 0) {
            ngx_omnibus_notify_taken(zone);
            ngx_omnibus_fanout_feed(zone);
        }
    }

fed:

    if (done) {
        ngx_omnibus_fanout_wake(zone);
    }
}


/*
 * A safety net, not the hot path: wake-ups written to a worker that died
 * or was replaced by a reload are not lost, at worst late by a second
 * (for queues and subscribers alike); deliveries left by a worker that
 * died are taken over; and deliveries that found no memory for a job
 * start again.
 */

static void
ngx_omnibus_dispatch_sweep(ngx_event_t *ev)
{
    ngx_uint_t            i, s;
    ngx_omnibus_sh_t     *sh;
    ngx_omnibus_zone_t  **zones;

    if (ngx_exiting) {
        return;
    }

    zones = ngx_omnibus_dispatch_conf->zones.elts;

    for (i = 0; i < ngx_omnibus_dispatch_conf->zones.nelts; i++) {
        sh = zones[i]->sh;

        ngx_omnibus_dispatch_recover(zones[i]);
        ngx_omnibus_fanout_reclaim(zones[i]);
        ngx_omnibus_fanout_feed(zones[i]);

        if (zones[i]->starved) {
            ngx_omnibus_dispatch_starved(zones[i]);
        }

        if (sh->fence) {
            ngx_post_event(&zones[i]->dispatch, &ngx_posted_events);
        }

        for (s = 0; s < sh->cap_shards; s++) {
            if (ngx_omnibus_shard_owner(s) == ngx_worker
                && sh->shards[s].queued && !sh->shards[s].paused)
            {
                ngx_post_event(&zones[i]->dispatch, &ngx_posted_events);
                break;
            }
        }
    }

    ngx_add_timer(ev, NGX_OMNIBUS_SWEEP_INTERVAL);
}


/* our messages in flight with routes that got no job yet */

static void
ngx_omnibus_dispatch_starved(ngx_omnibus_zone_t *zone)
{
    uint64_t              masks[NGX_OMNIBUS_DISPATCH_BATCH];
    ngx_uint_t            s, i, k;
    ngx_queue_t          *q;
    ngx_omnibus_sh_t     *sh;
    ngx_omnibus_msg_t    *msg, *batch[NGX_OMNIBUS_DISPATCH_BATCH];
    ngx_omnibus_shard_t  *shard;

    sh = zone->sh;
    zone->starved = 0;
    k = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (s = 0; s < sh->cap_shards; s++) {
        shard = &sh->shards[s];

        if (ngx_omnibus_shard_owner(s) != ngx_worker) {
            continue;
        }

        for (q = ngx_queue_head(&shard->inflight);
             q != ngx_queue_sentinel(&shard->inflight);
             q = ngx_queue_next(q))
        {
            msg = ngx_queue_data(q, ngx_omnibus_msg_t, queue);

            if (msg->owner != ngx_pid || msg->starved == 0) {
                continue;
            }

            if (k == NGX_OMNIBUS_DISPATCH_BATCH) {
                zone->starved = 1;          /* the rest at the next sweep */
                goto done;
            }

            batch[k] = msg;
            masks[k] = msg->starved;
            msg->starved = 0;
            k++;
        }
    }

done:

    ngx_shmtx_unlock(&zone->shpool->mutex);

    for (i = 0; i < k; i++) {
        ngx_omnibus_job_start(zone, batch[i], masks[i]);
    }
}
