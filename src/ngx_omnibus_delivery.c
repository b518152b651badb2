
/*
 * Deliveries: one job per (message, route), owned by the shard's worker.
 * A job takes one of the route's slots for its shard (per-topic order
 * for concurrency=1), passes the breaker, and has its sink make attempts
 * until one succeeds, a permanent error comes, or the retries are spent;
 * then it leaves the message's pending mask, or goes to the DLQ first.
 */


#include "ngx_omnibus.h"


static void ngx_omnibus_job_submit(ngx_omnibus_job_t *job);
static void ngx_omnibus_job_attempt(ngx_omnibus_job_t *job);
static void ngx_omnibus_job_retry(ngx_event_t *ev);
static void ngx_omnibus_job_finish(ngx_omnibus_job_t *job,
    ngx_uint_t complete);
static void ngx_omnibus_held_timer(ngx_event_t *ev);
static void ngx_omnibus_held_release(ngx_omnibus_route_t *route);
static void ngx_omnibus_held_wait(ngx_omnibus_route_t *route,
    ngx_msec_t wait);


uint64_t
ngx_omnibus_now_us(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


void
ngx_omnibus_delivery_start(ngx_omnibus_zone_t *zone, ngx_omnibus_msg_t *msg,
    uint64_t mask)
{
    ngx_uint_t            slot;
    ngx_omnibus_job_t    *job;
    ngx_omnibus_route_t  *route;

    for (slot = 0; mask; slot++, mask >>= 1) {

        if (!(mask & 1)) {
            continue;
        }

        route = zone->by_slot[slot];

        if (route == NULL) {
            /* the route went away in a reload: nothing left to do */
            ngx_omnibus_delivery_complete(zone, msg, slot);
            continue;
        }

        job = ngx_calloc(sizeof(ngx_omnibus_job_t), route->log);
        if (job == NULL) {
            /* retried by the sweep: the message stays in flight */
            continue;
        }

        job->route = route;
        job->msg = msg;
        job->shard = msg->shard;
        job->timer.handler = ngx_omnibus_job_retry;
        job->timer.data = job;
        job->timer.log = route->log;
        job->timer.cancelable = 1;

        ngx_omnibus_job_submit(job);
    }
}


static ngx_uint_t
ngx_omnibus_job_limit(ngx_omnibus_job_t *job)
{
    if (job->route->concurrency) {
        return job->route->concurrency;
    }

    return job->route->zone->sh->shards[job->shard].concurrency;
}


static void
ngx_omnibus_job_submit(ngx_omnibus_job_t *job)
{
    ngx_omnibus_route_t  *route;

    route = job->route;

    if (route->active[job->shard] >= ngx_omnibus_job_limit(job)
        || !ngx_queue_empty(&route->waiting[job->shard]))
    {
        ngx_queue_insert_tail(&route->waiting[job->shard], &job->queue);
        job->waiting = 1;
        return;
    }

    route->active[job->shard]++;

    ngx_omnibus_job_attempt(job);
}


static void
ngx_omnibus_job_attempt(ngx_omnibus_job_t *job)
{
    ngx_uint_t            probe;
    ngx_msec_t            wait;
    ngx_omnibus_route_t  *route;

    route = job->route;

    if (ngx_omnibus_breaker_admit(route, &probe, &wait) != NGX_OK) {
        ngx_queue_insert_tail(&route->held, &job->queue);
        job->held = 1;

        if (wait) {
            ngx_omnibus_held_wait(route, wait);
        }

        return;
    }

    job->probe = probe;
    job->attempt++;
    job->started = ngx_omnibus_now_us();

    route->sink->send(job);
}


/* the sink's verdict on one attempt */

void
ngx_omnibus_delivery_done(ngx_omnibus_job_t *job, ngx_omnibus_result_e rc,
    u_char *error, size_t len)
{
    ngx_msec_t               delay, elapsed;
    ngx_omnibus_sh_t        *sh;
    ngx_omnibus_route_t     *route;
    ngx_omnibus_route_sh_t  *rs;

    route = job->route;
    sh = route->zone->sh;
    rs = &sh->routes[route->slot];

    ngx_omnibus_histogram_observe(&rs->latency,
                                  ngx_omnibus_now_us() - job->started);

    ngx_omnibus_breaker_record(route, job->probe, rc);
    job->probe = 0;

    if (rc == NGX_OMNIBUS_DELIVERED) {
        (void) ngx_atomic_fetch_add(&rs->delivered, 1);
        (void) ngx_atomic_fetch_add(&sh->delivered, 1);
        ngx_omnibus_job_finish(job, 1);
        goto release;
    }

    (void) ngx_atomic_fetch_add(&rs->errors, 1);

    if (rc == NGX_OMNIBUS_RETRY && job->attempt <= route->retries) {

        if (ngx_exiting) {
            /* the message goes back to its queue when this worker exits */
            ngx_omnibus_job_finish(job, 0);
            goto release;
        }

        (void) ngx_atomic_fetch_add(&sh->shards[job->shard].retries, 1);

        delay = route->backoff << ngx_min(job->attempt - 1, 20);
        delay = ngx_min(delay, route->max_backoff);

        ngx_add_timer(&job->timer, delay);
        goto release;
    }

    ngx_log_error(NGX_LOG_INFO, route->log, 0,
                  "omnibus route \"%V\": message %*s to the DLQ after %ui "
                  "attempt(s): %*s", &route->name,
                  (size_t) NGX_OMNIBUS_ID_LEN, job->msg->id, job->attempt,
                  len, error);

    (void) ngx_atomic_fetch_add(&rs->dead, 1);

    ngx_omnibus_dlq_add(route->zone, job->msg, route->slot, job->attempt,
                        error, len, route->log);

    ngx_omnibus_job_finish(job, 1);

release:

    if (ngx_queue_empty(&route->held)) {
        return;
    }

    /* a probe ended: held jobs may go, or wait for the breaker again */

    if (rs->breaker != NGX_OMNIBUS_BREAKER_OPEN) {
        ngx_omnibus_held_release(route);

    } else {
        elapsed = ngx_current_msec - rs->opened;
        ngx_omnibus_held_wait(route, elapsed < route->breaker_timeout
                                     ? route->breaker_timeout - elapsed : 1);
    }
}


static void
ngx_omnibus_held_wait(ngx_omnibus_route_t *route, ngx_msec_t wait)
{
    if (route->breaker_timer.timer_set) {
        return;
    }

    route->breaker_timer.handler = ngx_omnibus_held_timer;
    route->breaker_timer.data = route;
    route->breaker_timer.log = route->log;
    route->breaker_timer.cancelable = 1;

    ngx_add_timer(&route->breaker_timer, wait);
}


static void
ngx_omnibus_job_retry(ngx_event_t *ev)
{
    ngx_omnibus_job_attempt(ev->data);
}


static void
ngx_omnibus_held_timer(ngx_event_t *ev)
{
    ngx_omnibus_held_release(ev->data);
}


static void
ngx_omnibus_held_release(ngx_omnibus_route_t *route)
{
    ngx_queue_t         held, *q;
    ngx_omnibus_job_t  *job;

    /* those the breaker still refuses come back to the list */

    ngx_queue_init(&held);

    if (!ngx_queue_empty(&route->held)) {
        ngx_queue_add(&held, &route->held);
        ngx_queue_init(&route->held);
    }

    while (!ngx_queue_empty(&held)) {
        q = ngx_queue_head(&held);
        ngx_queue_remove(q);

        job = ngx_queue_data(q, ngx_omnibus_job_t, queue);
        job->held = 0;

        ngx_omnibus_job_attempt(job);
    }
}


/* the job is over for this route: free its slot and tell the message */

static void
ngx_omnibus_job_finish(ngx_omnibus_job_t *job, ngx_uint_t complete)
{
    ngx_uint_t            shard, limit;
    ngx_queue_t          *q;
    ngx_omnibus_job_t    *next;
    ngx_omnibus_zone_t   *zone;
    ngx_omnibus_route_t  *route;

    route = job->route;
    zone = route->zone;
    shard = job->shard;
    limit = ngx_omnibus_job_limit(job);

    if (complete) {
        ngx_omnibus_delivery_complete(zone, job->msg, route->slot);
    }

    ngx_free(job);

    route->active[shard]--;

    if (!ngx_queue_empty(&route->waiting[shard])
        && route->active[shard] < limit && !ngx_exiting)
    {
        q = ngx_queue_head(&route->waiting[shard]);
        ngx_queue_remove(q);

        next = ngx_queue_data(q, ngx_omnibus_job_t, queue);
        next->waiting = 0;

        route->active[shard]++;
        ngx_omnibus_job_attempt(next);
    }

    ngx_post_event(&zone->dispatch, &ngx_posted_events);
}
