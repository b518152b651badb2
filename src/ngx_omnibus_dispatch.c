
/*
 * The shard worker loop.  Worker w owns the shards s with
 * s mod worker_processes == w and drains them when woken: the high queue
 * first, a bounded batch per turn so one busy shard cannot starve the
 * event loop.  Each message is handed to ngx_omnibus_dispatch_msg(), the
 * single point where consumers take it; unconsumed messages go to the
 * shard's retain ring.
 */


#include "ngx_omnibus.h"


#define NGX_OMNIBUS_DISPATCH_BATCH   64
#define NGX_OMNIBUS_DISPATCH_TURN    1024
#define NGX_OMNIBUS_SWEEP_INTERVAL   1000


static void ngx_omnibus_dispatch_zone(ngx_event_t *ev);
static void ngx_omnibus_dispatch_sweep(ngx_event_t *ev);


static ngx_omnibus_main_conf_t  *ngx_omnibus_dispatch_conf;
static ngx_event_t               ngx_omnibus_sweep_event;


ngx_int_t
ngx_omnibus_dispatch_init_process(ngx_cycle_t *cycle,
    ngx_omnibus_main_conf_t *omcf)
{
    ngx_uint_t           i;
    ngx_omnibus_zone_t  **zones, *zone;

    ngx_omnibus_dispatch_conf = omcf;

    zones = omcf->zones.elts;

    for (i = 0; i < omcf->zones.nelts; i++) {
        zone = zones[i];

        zone->dispatch.handler = ngx_omnibus_dispatch_zone;
        zone->dispatch.data = zone;
        zone->dispatch.log = cycle->log;
    }

    ngx_omnibus_sweep_event.handler = ngx_omnibus_dispatch_sweep;
    ngx_omnibus_sweep_event.log = cycle->log;
    ngx_omnibus_sweep_event.cancelable = 1;

    ngx_add_timer(&ngx_omnibus_sweep_event, NGX_OMNIBUS_SWEEP_INTERVAL);

    /* what was queued while this worker slot was empty is ours now */
    ngx_omnibus_dispatch_all();

    return NGX_OK;
}


void
ngx_omnibus_dispatch_exit_process(void)
{
    ngx_uint_t           i;
    ngx_omnibus_zone_t  **zones;

    if (ngx_omnibus_dispatch_conf == NULL) {
        return;
    }

    zones = ngx_omnibus_dispatch_conf->zones.elts;

    for (i = 0; i < ngx_omnibus_dispatch_conf->zones.nelts; i++) {
        if (zones[i]->dispatch.posted) {
            ngx_delete_posted_event(&zones[i]->dispatch);
        }
    }
}


void
ngx_omnibus_dispatch_all(void)
{
    ngx_uint_t           i;
    ngx_omnibus_zone_t  **zones;

    zones = ngx_omnibus_dispatch_conf->zones.elts;

    for (i = 0; i < ngx_omnibus_dispatch_conf->zones.nelts; i++) {
        ngx_omnibus_notify_taken(zones[i]);
        ngx_post_event(&zones[i]->dispatch, &ngx_posted_events);
    }
}


/*
 * Consumers plug in here.  A message that no route or subscriber takes
 * is counted as unrouted and kept only for resuming subscribers.
 */

static void
ngx_omnibus_dispatch_msg_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_shard_t *shard, ngx_omnibus_msg_t *msg)
{
    zone->sh->unrouted++;
    ngx_omnibus_retain_locked(zone, shard, msg);
}


static ngx_uint_t
ngx_omnibus_dispatch_shard(ngx_omnibus_zone_t *zone,
    ngx_omnibus_shard_t *shard, ngx_uint_t budget)
{
    uint64_t            now;
    ngx_uint_t          n, done;
    ngx_time_t         *tp;
    ngx_omnibus_msg_t  *msg;

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    done = 0;

    while (done < budget && shard->queued && !shard->paused) {

        ngx_shmtx_lock(&zone->shpool->mutex);

        for (n = 0; n < NGX_OMNIBUS_DISPATCH_BATCH; n++) {
            msg = ngx_omnibus_dequeue_locked(zone, shard);
            if (msg == NULL) {
                break;
            }

            ngx_omnibus_histogram_observe(&zone->sh->age,
                                          now > msg->born
                                          ? now - msg->born : 0);

            shard->dispatched++;
            ngx_omnibus_dispatch_msg_locked(zone, shard, msg);
        }

        ngx_shmtx_unlock(&zone->shpool->mutex);

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
    ngx_uint_t            s, budget, more;
    ngx_omnibus_sh_t     *sh;
    ngx_omnibus_zone_t   *zone;
    ngx_omnibus_shard_t  *shard;

    zone = ev->data;
    sh = zone->sh;

    budget = NGX_OMNIBUS_DISPATCH_TURN;
    more = 0;

    for (s = 0; s < sh->cap_shards; s++) {
        shard = &sh->shards[s];

        if (ngx_omnibus_shard_owner(s) != ngx_worker
            || shard->queued == 0 || shard->paused)
        {
            continue;
        }

        budget -= ngx_omnibus_dispatch_shard(zone, shard, budget);

        if (budget == 0) {
            more = 1;
            break;
        }
    }

    if (more) {
        /* yield to other events, then go on */
        ngx_post_event(ev, &ngx_posted_events);
    }
}


/*
 * A safety net, not the hot path: wake-ups written to a worker that died
 * or was replaced by a reload are not lost, at worst late by a second.
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
