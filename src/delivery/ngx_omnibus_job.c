
/*
 * Jobs: one per (message, route), owned by the shard's worker.  A job
 * takes one of the route's slots for its shard (per-topic order for
 * concurrency=1), passes the breaker, and has its sink make attempts
 * until one succeeds, a permanent error comes, or the retries are spent;
 * then it leaves the message's pending mask, or goes to the DLQ first.
 *
 * Jobs come from a per-worker free list.  When one cannot be had at all,
 * the route's bit goes to the message's "starved" mask, and the dispatch
 * sweep starts it again a second later.
 */


#include <ngx_omnibus_delivery.h>


/* backoffs double this many times at most, before their cap */
#define NGX_OMNIBUS_BACKOFF_SHIFT_MAX  20

/* jobs kept for reuse at most, per worker */
#define NGX_OMNIBUS_JOBS_FREE_MAX      4096


static ngx_omnibus_job_t *ngx_omnibus_job_get(ngx_omnibus_route_t *route);
static void ngx_omnibus_job_free(ngx_omnibus_job_t *job);
static void ngx_omnibus_job_starve(ngx_omnibus_zone_t *zone,
    ngx_omnibus_msg_t *msg, ngx_uint_t slot);
static void ngx_omnibus_job_submit(ngx_omnibus_job_t *job);
static void ngx_omnibus_job_attempt(ngx_omnibus_job_t *job);
static void ngx_omnibus_job_retry(ngx_event_t *ev);
static ngx_int_t ngx_omnibus_job_divert(ngx_omnibus_job_t *job);
static void ngx_omnibus_job_diverted(ngx_event_t *ev);
static void ngx_omnibus_job_finish(ngx_omnibus_job_t *job,
    ngx_uint_t complete);
static void ngx_omnibus_held_timer(ngx_event_t *ev);
static void ngx_omnibus_held_release(ngx_omnibus_route_t *route);
static void ngx_omnibus_held_wait(ngx_omnibus_route_t *route,
    ngx_msec_t wait);


/*
 * base * 2^n, capped; with jitter, a random point in the upper half of
 * that, so that many clients retrying at once spread out.  Retries of a
 * route have none: their spacing is what the route asked for.
 */

ngx_msec_t
ngx_omnibus_backoff(ngx_msec_t base, ngx_msec_t cap, ngx_uint_t n,
    ngx_uint_t jitter)
{
    ngx_msec_t  delay;

    delay = base << ngx_min(n, NGX_OMNIBUS_BACKOFF_SHIFT_MAX);
    delay = ngx_min(delay, cap);

    if (jitter && delay > 1) {
        delay = delay / 2 + (ngx_msec_t) ngx_random() % (delay / 2 + 1);
    }

    return delay;
}


static ngx_queue_t  ngx_omnibus_jobs_free = {
    &ngx_omnibus_jobs_free, &ngx_omnibus_jobs_free
};

static ngx_queue_t  ngx_omnibus_jobs_live = {
    &ngx_omnibus_jobs_live, &ngx_omnibus_jobs_live
};

static ngx_uint_t   ngx_omnibus_jobs_nfree;


static ngx_omnibus_job_t *
ngx_omnibus_job_get(ngx_omnibus_route_t *route)
{
    ngx_queue_t        *q;
    ngx_omnibus_job_t  *job;

    if (!ngx_queue_empty(&ngx_omnibus_jobs_free)) {
        q = ngx_queue_head(&ngx_omnibus_jobs_free);
        ngx_queue_remove(q);
        ngx_omnibus_jobs_nfree--;

        job = ngx_queue_data(q, ngx_omnibus_job_t, queue);
        ngx_memzero(job, sizeof(ngx_omnibus_job_t));

    } else {
        job = ngx_calloc(sizeof(ngx_omnibus_job_t), route->log);
        if (job == NULL) {
            return NULL;
        }
    }

    ngx_queue_insert_tail(&ngx_omnibus_jobs_live, &job->live);

    return job;
}


static void
ngx_omnibus_job_free(ngx_omnibus_job_t *job)
{
    ngx_queue_remove(&job->live);

    /* a burst's worth is kept, not every job the worker ever had */

    if (ngx_omnibus_jobs_nfree >= NGX_OMNIBUS_JOBS_FREE_MAX) {
        ngx_free(job);
        return;
    }

    ngx_queue_insert_head(&ngx_omnibus_jobs_free, &job->queue);
    ngx_omnibus_jobs_nfree++;
}


void
ngx_omnibus_job_start(ngx_omnibus_zone_t *zone, ngx_omnibus_msg_t *msg,
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
            ngx_omnibus_queue_done(zone, msg, slot);
            continue;
        }

        /*
         * While a job of the zone is owed, an ordered route takes none:
         * the sweep starts them in their order of dispatch.
         */

        job = (zone->starved && route->concurrency == 1)
              ? NULL : ngx_omnibus_job_get(route);

        if (job == NULL) {
            ngx_omnibus_job_starve(zone, msg, slot);
            continue;
        }

        job->route = route;
        job->msg = msg;
        job->shard = msg->shard;
        job->timer.handler = ngx_omnibus_job_retry;
        job->timer.data = job;
        job->timer.log = route->log;
        job->timer.cancelable = 1;

        ngx_log_debug3(NGX_LOG_DEBUG_EVENT, route->log, 0,
                       "omnibus job start: %*s to route \"%V\"",
                       (size_t) NGX_OMNIBUS_ID_LEN, msg->id, &route->name);

        ngx_omnibus_job_submit(job);
    }
}


/* no job for now: the message stays in flight, the sweep tries again */

static void
ngx_omnibus_job_starve(ngx_omnibus_zone_t *zone, ngx_omnibus_msg_t *msg,
    ngx_uint_t slot)
{
    ngx_shmtx_lock(&zone->shpool->mutex);
    msg->starved |= (uint64_t) 1 << slot;
    ngx_shmtx_unlock(&zone->shpool->mutex);

    /* once until the sweep starts them again */

    if (!zone->starved) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "omnibus zone \"%V\": no memory for a delivery of "
                      "message %*s, retried in a second", &zone->name,
                      (size_t) NGX_OMNIBUS_ID_LEN, msg->id);
    }

    zone->starved = 1;
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

    if (ngx_omnibus_breaker_admit(&route->breaker, &probe, &wait) != NGX_OK) {

        if (ngx_omnibus_job_divert(job) == NGX_OK) {
            return;
        }

        ngx_queue_insert_tail(&route->held, &job->queue);

        if (wait) {
            ngx_omnibus_held_wait(route, wait);
        }

        return;
    }

    job->probe = probe;
    job->attempt++;
    job->started = ngx_omnibus_now_us();
    job->sending = 1;

    ngx_log_debug4(NGX_LOG_DEBUG_EVENT, route->log, 0,
                   "omnibus attempt %ui of %*s to %V",
                   job->attempt, (size_t) NGX_OMNIBUS_ID_LEN, job->msg->id,
                   &route->sink->name);

    route->sink->send(job);
}


/* the sink's verdict on one attempt */

void
ngx_omnibus_job_done(ngx_omnibus_job_t *job, ngx_omnibus_result_e rc,
    u_char *error, size_t len)
{
    ngx_msec_t               delay;
    ngx_omnibus_sh_t        *sh;
    ngx_omnibus_route_t     *route;
    ngx_omnibus_route_sh_t  *rs;

    route = job->route;
    sh = route->zone->sh;
    rs = ngx_omnibus_route_sh(route);

    job->sending = 0;

    ngx_log_debug6(NGX_LOG_DEBUG_EVENT, route->log, 0,
                   "omnibus attempt %ui of %*s done: %i %*s",
                   job->attempt, (size_t) NGX_OMNIBUS_ID_LEN, job->msg->id,
                   (ngx_int_t) rc, len, error);

    ngx_omnibus_histogram_observe(&rs->latency,
                                  ngx_omnibus_now_us() - job->started);

    ngx_omnibus_breaker_record(&route->breaker, job->probe,
                               rc == NGX_OMNIBUS_RETRY);
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
            /*
             * Kept by the sink, or the message goes back to its queue
             * when this worker exits.
             */
            if (ngx_omnibus_job_divert(job) != NGX_OK) {
                ngx_omnibus_job_finish(job, 0);
            }

            goto release;
        }

        (void) ngx_atomic_fetch_add(&sh->shards[job->shard].retries, 1);

        delay = ngx_omnibus_backoff(route->backoff, route->max_backoff,
                                    job->attempt - 1, 0);

        ngx_add_timer(&job->timer, delay);
        goto release;
    }

    if (rc == NGX_OMNIBUS_RETRY && ngx_omnibus_job_divert(job) == NGX_OK) {
        goto release;
    }

    ngx_log_error(NGX_LOG_INFO, route->log, 0,
                  "omnibus route \"%V\": message %*s to the DLQ after %ui "
                  "attempt(s): %*s", &route->name,
                  (size_t) NGX_OMNIBUS_ID_LEN, job->msg->id, job->attempt,
                  len, error);

    (void) ngx_atomic_fetch_add(&rs->dead, 1);

    ngx_omnibus_dlq_add(route->zone, job->msg, route->slot.index,
                        job->attempt, error, len, route->log);

    ngx_omnibus_job_finish(job, 1);

release:

    if (ngx_queue_empty(&route->held)) {
        return;
    }

    /* a probe ended: held jobs may go, or wait for the breaker again */

    if (rs->breaker.state != NGX_OMNIBUS_BREAKER_OPEN) {
        ngx_omnibus_held_release(route);

    } else {
        ngx_omnibus_held_wait(route,
                              ngx_omnibus_breaker_open_for(&route->breaker));
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


/*
 * The sink keeps the record elsewhere.  The job ends from a posted event:
 * ending it here could start the next waiting job, and that one would
 * divert in turn, as deep as the queue.
 */

static ngx_int_t
ngx_omnibus_job_divert(ngx_omnibus_job_t *job)
{
    if (job->route->sink->divert == NULL
        || job->route->sink->divert(job) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    job->timer.handler = ngx_omnibus_job_diverted;
    ngx_post_event(&job->timer, &ngx_posted_events);

    return NGX_OK;
}


static void
ngx_omnibus_job_diverted(ngx_event_t *ev)
{
    ngx_omnibus_job_t  *job;

    job = ev->data;

    (void) ngx_atomic_fetch_add(&ngx_omnibus_route_sh(job->route)->diverted,
                                1);

    ngx_omnibus_job_finish(job, 1);
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
        ngx_omnibus_queue_done(zone, job->msg, route->slot.index);
    }

    ngx_omnibus_job_free(job);

    route->active[shard]--;

    if (!ngx_queue_empty(&route->waiting[shard])
        && route->active[shard] < limit && !ngx_exiting)
    {
        q = ngx_queue_head(&route->waiting[shard]);
        ngx_queue_remove(q);

        next = ngx_queue_data(q, ngx_omnibus_job_t, queue);

        route->active[shard]++;
        ngx_omnibus_job_attempt(next);
    }

    ngx_post_event(&zone->dispatch, &ngx_posted_events);
}


/*
 * The worker exits.  On a graceful quit no attempt is left (each holds
 * the worker by a timer that cannot be canceled); on a fast shutdown the
 * sinks release theirs.  Messages go back to their queues afterwards.
 */

void
ngx_omnibus_job_exit_process(void)
{
    ngx_queue_t        *q;
    ngx_omnibus_job_t  *job;

    for (q = ngx_queue_head(&ngx_omnibus_jobs_live);
         q != ngx_queue_sentinel(&ngx_omnibus_jobs_live);
         q = ngx_queue_next(q))
    {
        job = ngx_queue_data(q, ngx_omnibus_job_t, live);

        if (job->timer.timer_set) {
            ngx_del_timer(&job->timer);
        }

        if (job->sending && job->route->sink->cancel) {
            job->route->sink->cancel(job);
            job->sending = 0;
        }

        /*
         * Diverted already, or failing: kept by the sink if it can, done
         * with this route.  The rest go back to their queues.
         */

        if (job->timer.posted
            || (job->attempt && job->route->sink->divert
                && job->route->sink->divert(job) == NGX_OK))
        {
            if (job->timer.posted) {
                ngx_delete_posted_event(&job->timer);
            }

            (void) ngx_atomic_fetch_add(
                          &ngx_omnibus_route_sh(job->route)->diverted, 1);
            ngx_omnibus_queue_done(job->route->zone, job->msg,
                                   job->route->slot.index);
        }
    }

    while (!ngx_queue_empty(&ngx_omnibus_jobs_live)) {
        q = ngx_queue_head(&ngx_omnibus_jobs_live);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_omnibus_job_t, live));
    }

    while (!ngx_queue_empty(&ngx_omnibus_jobs_free)) {
        q = ngx_queue_head(&ngx_omnibus_jobs_free);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_omnibus_job_t, queue));
    }

    ngx_omnibus_jobs_nfree = 0;
}
