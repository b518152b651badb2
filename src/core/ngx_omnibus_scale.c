
/*
 * Elastic shards: adding and removing shards at run time, and the
 * autoscaler that decides it.  A ring change raises a fence so that no
 * topic is reordered by its move:
 *
 *   adding shard g:   g dispatches nothing until every other shard is done
 *                     with what it held at the change (seq <= its fence);
 *   removing shard d: d keeps draining; the others dispatch only what they
 *                     held at the change until d is empty, then d is gone.
 */


#include <ngx_omnibus_core.h>


/* per-shard concurrency moves within these bounds on these backlogs */
#define NGX_OMNIBUS_CONCURRENCY_MIN      2
#define NGX_OMNIBUS_CONCURRENCY_MAX      8
#define NGX_OMNIBUS_BACKLOG_HIGH         1000
#define NGX_OMNIBUS_BACKLOG_LOW          100


static void ngx_omnibus_autoscale(ngx_event_t *ev);


/* omnibus_autoscale's parameters: interval=, up=, down= */

char *
ngx_omnibus_scale_parse(ngx_conf_t *cf, ngx_omnibus_zone_t *zone,
    ngx_str_t *value, ngx_uint_t nvalue)
{
    ngx_str_t   v;
    ngx_int_t   n;
    ngx_uint_t  i;

    if (zone->autoscale) {
        return "is duplicate";
    }

    zone->autoscale = 60000;
    zone->scale_up = 80;
    zone->scale_down = 20;

    for (i = 0; i < nvalue; i++) {

        if (ngx_strncmp(value[i].data, "interval=", 9) == 0) {
            v.data = value[i].data + 9;
            v.len = value[i].len - 9;

            zone->autoscale = ngx_parse_time(&v, 0);
            if (zone->autoscale == (ngx_msec_t) NGX_ERROR
                || zone->autoscale < 100)
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "up=", 3) == 0
            || ngx_strncmp(value[i].data, "down=", 5) == 0)
        {
            v.data = ngx_strlchr(value[i].data,
                                 value[i].data + value[i].len, '=') + 1;
            v.len = value[i].data + value[i].len - v.data;

            if (v.len < 2 || v.data[v.len - 1] != '%') {
                goto invalid;
            }

            n = ngx_atoi(v.data, v.len - 1);
            if (n == NGX_ERROR || n > 100) {
                goto invalid;
            }

            if (value[i].data[0] == 'u') {
                zone->scale_up = n;

            } else {
                zone->scale_down = n;
            }

            continue;
        }

        goto invalid;
    }

    if (zone->scale_down >= zone->scale_up) {
        ngx_omnibus_conf_error(cf, "down= must be below up=");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_omnibus_conf_error(cf,
                           "invalid parameter \"%V\" (expected "
                           "interval=TIME of at least 100ms, up=N%% or "
                           "down=N%%)",
                           &value[i]);

    return NGX_CONF_ERROR;
}


/* NGX_OK, NGX_DECLINED at a bound, NGX_BUSY while a change is under way */

ngx_int_t
ngx_omnibus_scale_locked(ngx_omnibus_zone_t *zone, ngx_int_t delta,
    ngx_log_t *log)
{
    ngx_uint_t         s, n;
    ngx_omnibus_sh_t  *sh;

    sh = zone->sh;

    if (sh->fence) {
        return NGX_BUSY;
    }

    n = sh->nshards;

    if ((delta > 0 && (n >= zone->max_shards || n >= sh->cap_shards))
        || (delta < 0 && n <= zone->min_shards))
    {
        return NGX_DECLINED;
    }

    for (s = 0; s < n; s++) {
        sh->shards[s].fence = sh->shards[s].seq;
    }

    if (delta > 0) {
        sh->fence = NGX_OMNIBUS_FENCE_ADD;
        sh->fence_shard = n;
        sh->shards[n].concurrency = zone->concurrency;
        sh->nshards = n + 1;

    } else {
        sh->fence = NGX_OMNIBUS_FENCE_REMOVE;
        sh->fence_shard = n - 1;
        sh->shards[n - 1].draining = 1;
        sh->nshards = n - 1;
    }

    sh->ring_version++;

    ngx_log_error(NGX_LOG_INFO, log, 0,
                  "omnibus zone \"%V\": %s shard %ui, %ui shard(s) on ring "
                  "version %uA", &zone->name,
                  delta > 0 ? "added" : "draining and removing",
                  sh->fence_shard, sh->nshards, sh->ring_version);

    return NGX_OK;
}


static uint64_t
ngx_omnibus_oldest_seq_locked(ngx_omnibus_shard_t *shard)
{
    uint64_t            oldest;
    ngx_queue_t        *q;
    ngx_omnibus_msg_t  *msg;

    oldest = (uint64_t) -1;

    if (!ngx_queue_empty(&shard->high)) {
        msg = ngx_queue_data(ngx_queue_head(&shard->high),
                             ngx_omnibus_msg_t, queue);
        oldest = ngx_min(oldest, msg->seq);
    }

    if (!ngx_queue_empty(&shard->normal)) {
        msg = ngx_queue_data(ngx_queue_head(&shard->normal),
                             ngx_omnibus_msg_t, queue);
        oldest = ngx_min(oldest, msg->seq);
    }

    for (q = ngx_queue_head(&shard->inflight);
         q != ngx_queue_sentinel(&shard->inflight);
         q = ngx_queue_next(q))
    {
        msg = ngx_queue_data(q, ngx_omnibus_msg_t, queue);
        oldest = ngx_min(oldest, msg->seq);
    }

    return oldest;
}


/* lifts the fence once what it waits for is done; 1 if it did */

ngx_uint_t
ngx_omnibus_fence_check_locked(ngx_omnibus_zone_t *zone, ngx_log_t *log)
{
    ngx_uint_t            s;
    ngx_omnibus_sh_t     *sh;
    ngx_omnibus_shard_t  *shard;

    sh = zone->sh;

    if (sh->fence == NGX_OMNIBUS_FENCE_ADD) {
        for (s = 0; s < sh->fence_shard; s++) {
            shard = &sh->shards[s];

            /* replayed messages keep old seqs: only what was there */
            if ((shard->queued || shard->ninflight)
                && ngx_omnibus_oldest_seq_locked(shard) <= shard->fence)
            {
                return 0;
            }
        }

    } else if (sh->fence == NGX_OMNIBUS_FENCE_REMOVE) {
        shard = &sh->shards[sh->fence_shard];

        if (shard->queued || shard->ninflight) {
            return 0;
        }

        shard->draining = 0;

    } else {
        return 0;
    }

    ngx_log_error(NGX_LOG_INFO, log, 0,
                  "omnibus zone \"%V\": shard %ui %s, ring change done",
                  &zone->name, sh->fence_shard,
                  sh->fence == NGX_OMNIBUS_FENCE_ADD ? "takes its topics"
                                                     : "is drained and gone");

    sh->fence = 0;

    return 1;
}


/* the newest seq shard s may dispatch now */

uint64_t
ngx_omnibus_fence_limit(ngx_omnibus_zone_t *zone, ngx_uint_t s)
{
    ngx_omnibus_sh_t  *sh;

    sh = zone->sh;

    switch (sh->fence) {

    case NGX_OMNIBUS_FENCE_ADD:
        return s == sh->fence_shard ? 0 : (uint64_t) -1;

    case NGX_OMNIBUS_FENCE_REMOVE:
        return s == sh->fence_shard ? (uint64_t) -1 : sh->shards[s].fence;

    default:
        return (uint64_t) -1;
    }
}


ngx_int_t
ngx_omnibus_scale_init_process(ngx_omnibus_zone_t *zone, ngx_cycle_t *cycle)
{
    if (zone->autoscale == 0) {
        return NGX_OK;
    }

    zone->scale_event.handler = ngx_omnibus_autoscale;
    zone->scale_event.data = zone;
    zone->scale_event.log = cycle->log;
    zone->scale_event.cancelable = 1;

    ngx_add_timer(&zone->scale_event, zone->autoscale);

    return NGX_OK;
}


/*
 * Every worker's timer fires; the first to claim the interval decides.
 * Shards: mean utilisation of the queues against up= and down=.
 * Concurrency: per shard, up on a backlog over NGX_OMNIBUS_BACKLOG_HIGH,
 * down under NGX_OMNIBUS_BACKLOG_LOW.
 */

static void
ngx_omnibus_autoscale(ngx_event_t *ev)
{
    ngx_int_t             rc, delta;
    ngx_uint_t            s, queued, util, c;
    ngx_msec_t            now, last;
    ngx_omnibus_sh_t     *sh;
    ngx_omnibus_zone_t   *zone;
    ngx_omnibus_shard_t  *shard;

    zone = ev->data;
    sh = zone->sh;

    if (ngx_exiting) {
        return;
    }

    ngx_add_timer(ev, zone->autoscale);

    now = ngx_current_msec;
    last = sh->scaled;

    if (now - last < zone->autoscale * 9 / 10
        || !ngx_atomic_cmp_set(&sh->scaled, last, now))
    {
        return;
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    ngx_omnibus_fence_check_locked(zone, ev->log);

    queued = 0;

    for (s = 0; s < sh->nshards; s++) {
        shard = &sh->shards[s];
        queued += shard->queued;

        c = shard->concurrency;

        if (shard->queued > NGX_OMNIBUS_BACKLOG_HIGH
            && c < NGX_OMNIBUS_CONCURRENCY_MAX)
        {
            shard->concurrency++;
            sh->scaled_concurrency_up++;

        } else if (shard->queued < NGX_OMNIBUS_BACKLOG_LOW
                   && c > NGX_OMNIBUS_CONCURRENCY_MIN)
        {
            shard->concurrency--;
            sh->scaled_concurrency_down++;
        }

        if (c != shard->concurrency) {
            ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                          "omnibus zone \"%V\": shard %ui concurrency "
                          "%ui -> %ui (%ui queued)", &zone->name, s, c,
                          shard->concurrency, shard->queued);
        }
    }

    util = queued * 100 / (sh->nshards * sh->queue_size);

    delta = (util > zone->scale_up) ? 1
            : (util < zone->scale_down) ? -1 : 0;

    rc = delta ? ngx_omnibus_scale_locked(zone, delta, ev->log) : NGX_DECLINED;

    if (rc == NGX_OK) {
        if (delta > 0) {
            sh->scaled_up++;

        } else {
            sh->scaled_down++;
        }

        ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                      "omnibus zone \"%V\": autoscale %s at %ui%% mean "
                      "utilisation (up=%ui%% down=%ui%%)", &zone->name,
                      delta > 0 ? "up" : "down", util, zone->scale_up,
                      zone->scale_down);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (rc == NGX_OK) {
        ngx_omnibus_notify_all(zone);
    }
}
