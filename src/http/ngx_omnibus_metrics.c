
/*
 * Prometheus text exposition (format 0.0.4) of every zone.
 */


#include <ngx_omnibus_http.h>


static void
ngx_omnibus_metrics_family(ngx_omnibus_out_t *out, const char *name,
    const char *type, const char *help)
{
    ngx_omnibus_out_printf(out, "# HELP message_bus_%s %s\n"
                           "# TYPE message_bus_%s %s\n",
                           name, help, name, type);
}


/* labels: zone="..." plus an optional route="..." */

static void
ngx_omnibus_metrics_histogram(ngx_omnibus_out_t *out, const char *name,
    u_char *labels, ngx_omnibus_histogram_t *h)
{
    uint64_t    us;
    ngx_uint_t  i, cumulative, count;

    /* the count first: observations may land while we read */
    count = h->count;
    cumulative = 0;

    for (i = 0; i < NGX_OMNIBUS_BUCKETS; i++) {
        cumulative = ngx_min(cumulative + h->bucket[i], count);
        us = ngx_omnibus_bounds_us[i];

        ngx_omnibus_out_printf(out, "message_bus_%s_bucket{%s,"
                               "le=\"%uL.%06uL\"} %ui\n", name, labels,
                               us / 1000000, us % 1000000, cumulative);
    }

    ngx_omnibus_out_printf(out,
                           "message_bus_%s_bucket{%s,le=\"+Inf\"} %ui\n"
                           "message_bus_%s_sum{%s} %uA.%06uA\n"
                           "message_bus_%s_count{%s} %ui\n",
                           name, labels, count,
                           name, labels, h->sum_us / 1000000,
                           h->sum_us % 1000000,
                           name, labels, count);
}


static u_char *
ngx_omnibus_metrics_labels(ngx_omnibus_out_t *out, ngx_str_t *zone,
    ngx_omnibus_route_t *route)
{
    u_char      *p, *q;
    ngx_uint_t   i;

    p = ngx_pnalloc(out->r->pool, zone->len + 2 * (route ? route->name.len
                                                         : 0) + 32);
    if (p == NULL) {
        out->error = 1;
        return (u_char *) "";
    }

    q = ngx_sprintf(p, "zone=\"%V\"", zone);

    if (route) {
        q = ngx_cpymem(q, ",route=\"", 8);

        for (i = 0; i < route->name.len; i++) {
            if (route->name.data[i] == '"' || route->name.data[i] == '\\') {
                *q++ = '\\';
            }

            *q++ = route->name.data[i];
        }

        *q++ = '"';
    }

    *q = '\0';

    return p;
}


/*
 * Most families are one field read in each zone, shard or route; the
 * table below says which, and writers do the rest.
 */

enum {
    NGX_OMNIBUS_M_ZONE = 0,                  /* ngx_omnibus_sh_t field */
    NGX_OMNIBUS_M_SHARD,                     /* ngx_omnibus_shard_t field */
    NGX_OMNIBUS_M_ROUTE,                     /* ngx_omnibus_route_sh_t field */
    NGX_OMNIBUS_M_HISTOGRAM,                 /* histogram in the zone */
    NGX_OMNIBUS_M_ROUTE_HISTOGRAM,           /* histogram per route */
    NGX_OMNIBUS_M_OWN                        /* a writer of its own */
};


typedef void (*ngx_omnibus_metric_pt)(ngx_omnibus_out_t *out,
    ngx_omnibus_zone_t *zone, ngx_str_t *name);


static void
ngx_omnibus_metric_queue(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_uint_t            s;
    ngx_omnibus_shard_t  *shard;

    for (s = 0; s < ngx_omnibus_shards_shown(zone->sh); s++) {
        shard = &zone->sh->shards[s];

        ngx_omnibus_out_printf(out,
                          "message_bus_queue_size{zone=\"%V\",shard=\"%ui\","
                          "priority=\"high\"} %ui\n"
                          "message_bus_queue_size{zone=\"%V\",shard=\"%ui\","
                          "priority=\"normal\"} %ui\n",
                          name, s, shard->high_queued,
                          name, s, shard->queued - shard->high_queued);
    }
}


static void
ngx_omnibus_metric_topics(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_uint_t                 i;
    ngx_omnibus_topic_stat_t  *ts;

    for (i = 0; i < NGX_OMNIBUS_TOPIC_STATS; i++) {
        ts = &zone->sh->topics[i];

        if (ts->len) {
            /* topic names need no escaping: [A-Za-z0-9_.:-] only */
            ngx_omnibus_out_printf(out, "message_bus_topic_throughput_total{"
                                   "zone=\"%V\",topic=\"%*s\"} %uA\n",
                                   name, (size_t) ts->len, ts->topic,
                                   ts->count);
        }
    }

    ngx_omnibus_out_printf(out, "message_bus_topic_throughput_total{"
                           "zone=\"%V\",topic=\"_other\"} %uA\n",
                           name, zone->sh->topic_other);
}


static void
ngx_omnibus_metric_subscribers(ngx_omnibus_out_t *out,
    ngx_omnibus_zone_t *zone, ngx_str_t *name)
{
    ngx_omnibus_out_printf(out, "message_bus_subscribers{zone=\"%V\"} %ui\n",
                           name, ngx_omnibus_fanout_count(zone));
}


static void
ngx_omnibus_metric_rejected(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_OMNIBUS_REJ_MAX; i++) {
        ngx_omnibus_out_printf(out, "message_bus_rejected_total{zone=\"%V\","
                               "reason=\"%s\"} %uA\n", name,
                               ngx_omnibus_rejections[i].code,
                               zone->sh->rejected[i]);
    }
}


static void
ngx_omnibus_metric_autoscale(ngx_omnibus_out_t *out,
    ngx_omnibus_zone_t *zone, ngx_str_t *name)
{
    ngx_omnibus_sh_t  *sh;

    sh = zone->sh;

    ngx_omnibus_out_printf(out,
        "message_bus_autoscale_decisions_total{zone=\"%V\","
        "action=\"shard_up\"} %uA\n"
        "message_bus_autoscale_decisions_total{zone=\"%V\","
        "action=\"shard_down\"} %uA\n"
        "message_bus_autoscale_decisions_total{zone=\"%V\","
        "action=\"concurrency_up\"} %uA\n"
        "message_bus_autoscale_decisions_total{zone=\"%V\","
        "action=\"concurrency_down\"} %uA\n",
        name, sh->scaled_up, name, sh->scaled_down,
        name, sh->scaled_concurrency_up, name, sh->scaled_concurrency_down);
}


static void
ngx_omnibus_metric_bytes(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_uint_t  pages, pfree;

    pages = (zone->shpool->end - zone->shpool->start) / ngx_pagesize;
    pfree = zone->shpool->pfree;

    ngx_omnibus_out_printf(out, "message_bus_zone_used_bytes{zone=\"%V\"} "
                           "%ui\n", name, (pages - pfree) * ngx_pagesize);
}


static void
ngx_omnibus_metric_free(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_out_printf(out, "message_bus_zone_free_bytes{zone=\"%V\"} "
                           "%ui\n", name, zone->shpool->pfree * ngx_pagesize);
}


#define ngx_omnibus_zone_field(f)   NGX_OMNIBUS_M_ZONE,                    \
                                    offsetof(ngx_omnibus_sh_t, f), NULL
#define ngx_omnibus_shard_field(f)  NGX_OMNIBUS_M_SHARD,                   \
                                    offsetof(ngx_omnibus_shard_t, f), NULL
#define ngx_omnibus_route_field(f)  NGX_OMNIBUS_M_ROUTE,                   \
                                    offsetof(ngx_omnibus_route_sh_t, f), NULL
#define ngx_omnibus_own(w)          NGX_OMNIBUS_M_OWN, 0, w


static struct {
    const char             *name;
    const char             *type;
    const char             *help;
    ngx_uint_t              kind;
    size_t                  offset;
    ngx_omnibus_metric_pt   write;
} ngx_omnibus_families[] = {

    { "queue_size", "gauge", "Messages queued per shard and priority class.",
      ngx_omnibus_own(ngx_omnibus_metric_queue) },
    { "queue_capacity", "gauge",
      "Messages a shard's queue holds at most (queue_size).",
      ngx_omnibus_zone_field(queue_size) },
    { "retained_messages", "gauge",
      "Dispatched messages kept per shard for resuming subscribers.",
      ngx_omnibus_shard_field(retained) },
    { "shard_paused", "gauge", "1 while the admin API holds the shard.",
      ngx_omnibus_shard_field(paused) },
    { "inflight_messages", "gauge",
      "Messages dispatched and not yet done with every route.",
      ngx_omnibus_shard_field(ninflight) },
    { "message_age_seconds", "histogram", "Time from publish to dispatch.",
      NGX_OMNIBUS_M_HISTOGRAM, offsetof(ngx_omnibus_sh_t, age), NULL },
    { "dispatch_duration_seconds", "histogram",
      "Time from dispatch until every route is done with a message.",
      NGX_OMNIBUS_M_HISTOGRAM, offsetof(ngx_omnibus_sh_t, dispatch), NULL },
    { "callback_latency_seconds", "histogram",
      "Duration of webhook attempts, per route.",
      NGX_OMNIBUS_M_ROUTE_HISTOGRAM,
      offsetof(ngx_omnibus_route_sh_t, latency), NULL },
    { "callback_errors_total", "counter",
      "Failed webhook attempts, per route.",
      ngx_omnibus_route_field(errors) },
    { "route_delivered_total", "counter", "Messages delivered, per route.",
      ngx_omnibus_route_field(delivered) },
    { "route_dead_total", "counter",
      "Messages sent to the dead letter queue, per route.",
      ngx_omnibus_route_field(dead) },
    { "breaker_state", "gauge",
      "Circuit breaker per route: 0 closed, 1 open, 2 half-open.",
      ngx_omnibus_route_field(breaker.state) },
    { "publish_retries_total", "counter",
      "Delivery attempts retried, per shard.",
      ngx_omnibus_shard_field(retries) },
    { "delivered_total", "counter",
      "Deliveries that succeeded (one per message and route).",
      ngx_omnibus_zone_field(delivered) },
    { "dead_lettered_total", "counter",
      "Deliveries that went to the dead letter queue.",
      ngx_omnibus_zone_field(dead) },
    { "completed_total", "counter",
      "Messages done with every route they were dispatched to.",
      ngx_omnibus_zone_field(completed) },
    { "dlq_size", "gauge", "Entries in the dead letter queue.",
      ngx_omnibus_zone_field(dlq_size) },
    { "dlq_evicted_total", "counter",
      "Dead letter entries dropped to make room.",
      ngx_omnibus_zone_field(dlq_evicted) },
    { "dlq_replayed_total", "counter",
      "Dead letter entries queued again by replay.",
      ngx_omnibus_zone_field(dlq_replayed) },
    { "subscribers", "gauge", "Connected SSE and long-poll subscribers.",
      ngx_omnibus_own(ngx_omnibus_metric_subscribers) },
    { "slow_subscribers_dropped_total", "counter",
      "SSE subscribers dropped for not reading their stream.",
      ngx_omnibus_zone_field(slow_dropped) },
    { "subscriber_missed_total", "counter",
      "Messages the subscribers of a worker missed: the retain ring held "
      "them for that worker's fan-out as long as it could.",
      ngx_omnibus_zone_field(sub_missed) },
    { "topic_throughput_total", "counter",
      "Messages published per topic; topics past the cap count as _other.",
      ngx_omnibus_own(ngx_omnibus_metric_topics) },
    { "published_total", "counter", "Messages accepted into a queue.",
      ngx_omnibus_zone_field(published) },
    { "rejected_total", "counter", "Publishes refused, by reason.",
      ngx_omnibus_own(ngx_omnibus_metric_rejected) },
    { "deduplicated_total", "counter",
      "Publishes answered as duplicates of an earlier message.",
      ngx_omnibus_zone_field(deduplicated) },
    { "unrouted_total", "counter",
      "Messages dispatched with no route or subscriber to take them.",
      ngx_omnibus_zone_field(unrouted) },
    { "dedup_entries", "gauge", "Idempotency keys remembered.",
      ngx_omnibus_zone_field(dedup_entries) },
    { "shards", "gauge", "Shards on the ring.",
      ngx_omnibus_zone_field(nshards) },
    { "shard_concurrency", "gauge",
      "Concurrent deliveries per shard and route.",
      ngx_omnibus_shard_field(concurrency) },
    { "autoscale_decisions_total", "counter",
      "Autoscaler decisions, by action.",
      ngx_omnibus_own(ngx_omnibus_metric_autoscale) },
    { "worker_starts_total", "counter",
      "Worker processes started on the zone: more than worker_processes "
      "per start or reload means workers died and were respawned.",
      ngx_omnibus_zone_field(worker_starts) },
    { "ring_version", "gauge", "Changes of the hash ring so far.",
      ngx_omnibus_zone_field(ring_version) },
    { "zone_used_bytes", "gauge", "Shared memory pages in use, in bytes.",
      ngx_omnibus_own(ngx_omnibus_metric_bytes) },
    { "zone_free_bytes", "gauge", "Shared memory pages free, in bytes.",
      ngx_omnibus_own(ngx_omnibus_metric_free) },
};


static void
ngx_omnibus_metrics_write(ngx_omnibus_out_t *out, ngx_uint_t f,
    ngx_omnibus_zone_t *zone)
{
    u_char                *p;
    ngx_uint_t             i, n;
    ngx_omnibus_sh_t      *sh;
    ngx_omnibus_route_t  **routes;

    sh = zone->sh;
    routes = zone->routes.elts;

    switch (ngx_omnibus_families[f].kind) {

    case NGX_OMNIBUS_M_ZONE:
        p = (u_char *) sh + ngx_omnibus_families[f].offset;
        ngx_omnibus_out_printf(out, "message_bus_%s{zone=\"%V\"} %ui\n",
                               ngx_omnibus_families[f].name, &zone->name,
                               *(ngx_uint_t *) p);
        break;

    case NGX_OMNIBUS_M_SHARD:
        n = ngx_omnibus_shards_shown(sh);

        for (i = 0; i < n; i++) {
            p = (u_char *) &sh->shards[i] + ngx_omnibus_families[f].offset;
            ngx_omnibus_out_printf(out, "message_bus_%s{zone=\"%V\","
                                   "shard=\"%ui\"} %ui\n",
                                   ngx_omnibus_families[f].name, &zone->name,
                                   i, *(ngx_uint_t *) p);
        }

        break;

    case NGX_OMNIBUS_M_ROUTE:
    case NGX_OMNIBUS_M_ROUTE_HISTOGRAM:
        for (i = 0; i < zone->routes.nelts; i++) {
            p = (u_char *) ngx_omnibus_route_sh(routes[i])
                + ngx_omnibus_families[f].offset;

            if (ngx_omnibus_families[f].kind == NGX_OMNIBUS_M_ROUTE) {
                ngx_omnibus_out_printf(out, "message_bus_%s{%s} %ui\n",
                                       ngx_omnibus_families[f].name,
                                       ngx_omnibus_metrics_labels(out,
                                                 &zone->name, routes[i]),
                                       *(ngx_uint_t *) p);

            } else {
                ngx_omnibus_metrics_histogram(out,
                                       ngx_omnibus_families[f].name,
                                       ngx_omnibus_metrics_labels(out,
                                                 &zone->name, routes[i]),
                                       (ngx_omnibus_histogram_t *) p);
            }
        }

        break;

    case NGX_OMNIBUS_M_HISTOGRAM:
        p = (u_char *) sh + ngx_omnibus_families[f].offset;
        ngx_omnibus_metrics_histogram(out, ngx_omnibus_families[f].name,
                                      ngx_omnibus_metrics_labels(out,
                                                        &zone->name, NULL),
                                      (ngx_omnibus_histogram_t *) p);
        break;

    default:
        ngx_omnibus_families[f].write(out, zone, &zone->name);
    }
}


#if (NGX_OMNIBUS_HAVE_KAFKA)

static ngx_uint_t ngx_omnibus_metrics_kafka_state(ngx_omnibus_zone_t *zone,
    ngx_uint_t *up, ngx_uint_t *state);


/*
 * Kafka routes: the DESIGN's families, and the seed's two names without
 * our prefix.  Printed only when some zone has a kafka:// route.
 */

static void
ngx_omnibus_metrics_kafka(ngx_omnibus_out_t *out,
    ngx_omnibus_main_conf_t *omcf)
{
    u_char                   *labels;
    ngx_uint_t                z, i, j, any, up, state;
    ngx_atomic_uint_t         failures[NGX_OMNIBUS_KAFKA_REASONS];
    ngx_omnibus_zone_t      **zones, *zone;
    ngx_omnibus_route_t     **routes;
    ngx_omnibus_lag_t        *lag;
    ngx_omnibus_route_sh_t   *rs;

    static const char        *counters[] = {
        "kafka_produced_total",
        "Records acknowledged by the Kafka cluster, per route.",
        "kafka_fallback_total",
        "Records written to the fallback file, per route.",
        "kafka_fallback_replayed_total",
        "Records of the fallback file replayed and acknowledged, per route."
    };

    zones = omcf->zones.elts;
    any = 0;

    for (z = 0; z < omcf->zones.nelts; z++) {
        any |= ngx_omnibus_metrics_kafka_state(zones[z], &up, &state);
    }

    if (!any) {
        return;
    }

    for (j = 0; j < 3; j++) {
        ngx_omnibus_metrics_family(out, counters[2 * j], "counter",
                                   counters[2 * j + 1]);

        for (z = 0; z < omcf->zones.nelts; z++) {
            zone = zones[z];
            routes = zone->routes.elts;

            for (i = 0; i < zone->routes.nelts; i++) {
                if (routes[i]->sink != &ngx_omnibus_sink_kafka) {
                    continue;
                }

                rs = ngx_omnibus_route_sh(routes[i]);
                labels = ngx_omnibus_metrics_labels(out, &zone->name,
                                                    routes[i]);

                ngx_omnibus_out_printf(out, "message_bus_%s{%s} %uA\n",
                                       counters[2 * j], labels,
                                       j == 0 ? rs->delivered
                                       : j == 1 ? rs->diverted
                                       : rs->replayed);
            }
        }
    }

    ngx_omnibus_metrics_family(out, "kafka_delivery_seconds", "histogram",
                               "From produce to the acknowledged delivery "
                               "report, per route.");

    for (z = 0; z < omcf->zones.nelts; z++) {
        zone = zones[z];
        routes = zone->routes.elts;

        for (i = 0; i < zone->routes.nelts; i++) {
            if (routes[i]->sink == &ngx_omnibus_sink_kafka) {
                ngx_omnibus_metrics_histogram(out, "kafka_delivery_seconds",
                    ngx_omnibus_metrics_labels(out, &zone->name, routes[i]),
                    &ngx_omnibus_route_sh(routes[i])->latency);
            }
        }
    }

    ngx_omnibus_out_printf(out,
        "# HELP kafka_connection_failures_total Kafka connection failures "
        "by reason.\n"
        "# TYPE kafka_connection_failures_total counter\n");

    for (z = 0; z < omcf->zones.nelts; z++) {
        zone = zones[z];
        routes = zone->routes.elts;

        ngx_memzero(failures, sizeof(failures));

        if (zone->inputs.nelts) {
            for (j = 0; j < NGX_OMNIBUS_KAFKA_REASONS; j++) {
                failures[j] = zone->sh->input_failures[j];
            }
        }

        for (i = 0; i < zone->routes.nelts; i++) {
            if (routes[i]->sink != &ngx_omnibus_sink_kafka) {
                continue;
            }

            rs = ngx_omnibus_route_sh(routes[i]);

            for (j = 0; j < NGX_OMNIBUS_KAFKA_REASONS; j++) {
                failures[j] += rs->sink_failures[j];
            }
        }

        for (j = 0; j < NGX_OMNIBUS_KAFKA_REASONS; j++) {
            ngx_omnibus_out_printf(out, "kafka_connection_failures_total"
                                   "{zone=\"%V\",reason=\"%s\"} %uA\n",
                                   &zone->name,
                                   ngx_omnibus_kafka_reasons[j],
                                   failures[j]);
        }
    }

    ngx_omnibus_out_printf(out,
        "# HELP kafka_health_check_status 1 while the Kafka clusters of "
        "every route and consumer answer.\n"
        "# TYPE kafka_health_check_status gauge\n");

    for (z = 0; z < omcf->zones.nelts; z++) {
        if (ngx_omnibus_metrics_kafka_state(zones[z], &up, &state)) {
            ngx_omnibus_out_printf(out, "kafka_health_check_status"
                                   "{zone=\"%V\"} %ui\n", &zones[z]->name,
                                   up);
        }
    }

    ngx_omnibus_metrics_family(out, "kafka_consumed_total", "counter",
                               "Kafka records published into the bus.");

    for (z = 0; z < omcf->zones.nelts; z++) {
        if (zones[z]->inputs.nelts) {
            ngx_omnibus_out_printf(out, "message_bus_kafka_consumed_total"
                                   "{zone=\"%V\"} %uA\n", &zones[z]->name,
                                   zones[z]->sh->input_consumed);
        }
    }

    ngx_omnibus_metrics_family(out, "kafka_consumer_lag", "gauge",
                               "Records behind the end of each partition "
                               "this bus consumes.");

    for (z = 0; z < omcf->zones.nelts; z++) {
        for (j = 0; zones[z]->inputs.nelts && j < NGX_OMNIBUS_INPUT_LAGS;
             j++)
        {
            lag = &zones[z]->sh->input_lag[j];

            if (lag->topic_len) {
                ngx_omnibus_out_printf(out, "message_bus_kafka_consumer_lag"
                                       "{zone=\"%V\",topic=\"%*s\","
                                       "partition=\"%D\"} %uA\n",
                                       &zones[z]->name,
                                       (size_t) lag->topic_len, lag->topic,
                                       lag->partition, lag->lag);
            }
        }
    }
}


/* up: every kafka route's; the breaker: open, else half-open, else closed */

static ngx_uint_t
ngx_omnibus_metrics_kafka_state(ngx_omnibus_zone_t *zone, ngx_uint_t *up,
    ngx_uint_t *state)
{
    ngx_uint_t               i, any;
    ngx_omnibus_route_t    **routes;
    ngx_omnibus_route_sh_t  *rs;

    routes = zone->routes.elts;
    any = (zone->inputs.nelts != 0);
    *up = any ? (zone->sh->input_up != 0) : 1;
    *state = NGX_OMNIBUS_BREAKER_CLOSED;

    for (i = 0; i < zone->routes.nelts; i++) {
        if (routes[i]->sink != &ngx_omnibus_sink_kafka) {
            continue;
        }

        rs = ngx_omnibus_route_sh(routes[i]);
        any = 1;
        *up &= (rs->sink_up != 0);

        if (*state != NGX_OMNIBUS_BREAKER_OPEN) {
            if (rs->breaker.state != NGX_OMNIBUS_BREAKER_CLOSED) {
                *state = rs->breaker.state;
            }
        }
    }

    return any;
}

#endif


/* zones with omnibus_store: what was written, how fast, what failed */

static ngx_omnibus_store_proc_t *
ngx_omnibus_metrics_store_totals(ngx_omnibus_zone_t *zone)
{
    static ngx_omnibus_store_proc_t  total;

    ngx_omnibus_store_totals(zone->sh, &total);

    return &total;
}


static const char  *ngx_omnibus_store_ops[NGX_OMNIBUS_STORE_OPS] = {
    "insert", "done", "dlq", "admin"
};

static const char  *ngx_omnibus_store_reasons[NGX_OMNIBUS_STORE_REASONS] = {
    "connect", "query", "timeout", "backlog_full"
};

static const char  *ngx_omnibus_store_states[3] = {
    "idle", "busy", "connecting"
};


static void
ngx_omnibus_metrics_store(ngx_omnibus_out_t *out,
    ngx_omnibus_main_conf_t *omcf)
{
    ngx_uint_t                 z, i, count, cumulative;
    ngx_omnibus_zone_t       **zones;
    ngx_omnibus_store_sh_t    *st;
    ngx_omnibus_store_proc_t  *total;

    zones = omcf->zones.elts;

    ngx_omnibus_metrics_family(out, "store_commit_seconds", "histogram",
                               "From a batch sent to PostgreSQL to its "
                               "commit.");

    for (z = 0; z < omcf->zones.nelts; z++) {
        if (zones[z]->store) {
            ngx_omnibus_metrics_histogram(out, "store_commit_seconds",
                ngx_omnibus_metrics_labels(out, &zones[z]->name, NULL),
                &zones[z]->sh->store.commit);
        }
    }

    ngx_omnibus_metrics_family(out, "store_batch_rows", "histogram",
                               "Rows per committed transaction.");

    for (z = 0; z < omcf->zones.nelts; z++) {
        if (zones[z]->store == NULL) {
            continue;
        }

        st = &zones[z]->sh->store;
        count = st->batch.count;
        cumulative = 0;

        for (i = 0; i < NGX_OMNIBUS_BUCKETS; i++) {
            cumulative = ngx_min(cumulative + st->batch.bucket[i], count);
            ngx_omnibus_out_printf(out, "message_bus_store_batch_rows_bucket"
                                   "{zone=\"%V\",le=\"%uL\"} %ui\n",
                                   &zones[z]->name,
                                   ngx_omnibus_bounds_rows[i], cumulative);
        }

        ngx_omnibus_out_printf(out,
                     "message_bus_store_batch_rows_bucket{zone=\"%V\","
                     "le=\"+Inf\"} %ui\n"
                     "message_bus_store_batch_rows_sum{zone=\"%V\"} %uA\n"
                     "message_bus_store_batch_rows_count{zone=\"%V\"} %ui\n",
                     &zones[z]->name, count, &zones[z]->name,
                     st->batch.sum_us, &zones[z]->name, count);
    }

    ngx_omnibus_metrics_family(out, "store_rows_total", "counter",
                               "Rows committed, by what they say.");

    for (z = 0; z < omcf->zones.nelts; z++) {
        for (i = 0; zones[z]->store && i < NGX_OMNIBUS_STORE_OPS; i++) {
            ngx_omnibus_out_printf(out, "message_bus_store_rows_total"
                                   "{zone=\"%V\",op=\"%s\"} %uA\n",
                                   &zones[z]->name, ngx_omnibus_store_ops[i],
                                   zones[z]->sh->store.rows[i]);
        }
    }

    ngx_omnibus_metrics_family(out, "store_errors_total", "counter",
                               "Store failures by reason.");

    for (z = 0; z < omcf->zones.nelts; z++) {
        for (i = 0; zones[z]->store && i < NGX_OMNIBUS_STORE_REASONS; i++) {
            ngx_omnibus_out_printf(out, "message_bus_store_errors_total"
                                   "{zone=\"%V\",reason=\"%s\"} %uA\n",
                                   &zones[z]->name,
                                   ngx_omnibus_store_reasons[i],
                                   zones[z]->sh->store.errors[i]);
        }
    }

    ngx_omnibus_metrics_family(out, "store_backlog", "gauge",
                               "Message rows accepted and not yet "
                               "committed.");

    for (z = 0; z < omcf->zones.nelts; z++) {
        if (zones[z]->store) {
            ngx_omnibus_out_printf(out, "message_bus_store_backlog"
                                   "{zone=\"%V\"} %uA\n", &zones[z]->name,
                                   ngx_omnibus_metrics_store_totals(zones[z])
                                   ->backlog);
        }
    }

    ngx_omnibus_metrics_family(out, "store_connections", "gauge",
                               "PostgreSQL connections of every worker, "
                               "by state.");

    for (z = 0; z < omcf->zones.nelts; z++) {
        if (zones[z]->store == NULL) {
            continue;
        }

        /* one pass over the workers' slots for the three states */
        total = ngx_omnibus_metrics_store_totals(zones[z]);

        for (i = 0; i < 3; i++) {
            ngx_omnibus_out_printf(out, "message_bus_store_connections"
                                   "{zone=\"%V\",state=\"%s\"} %uA\n",
                                   &zones[z]->name,
                                   ngx_omnibus_store_states[i],
                                   total->connections[i]);
        }
    }

    for (i = 0; i < 2; i++) {
        ngx_omnibus_metrics_family(out, i ? "store_adopted_total"
                                          : "store_recovered_total",
                                   "counter",
                                   i ? "Stored messages of a silent node "
                                       "adopted by this one."
                                     : "Stored messages loaded back into a "
                                       "new zone.");

        for (z = 0; z < omcf->zones.nelts; z++) {
            if (zones[z]->store) {
                ngx_omnibus_out_printf(out, "message_bus_store_%s_total"
                                       "{zone=\"%V\"} %uA\n",
                                       i ? "adopted" : "recovered",
                                       &zones[z]->name,
                                       i ? zones[z]->sh->store.adopted
                                         : zones[z]->sh->store.recovered);
            }
        }
    }
}


/*
 * zones with omnibus_redis: one family per counter, a label per kind;
 * the fields are named by their offset in the zone's cluster state
 */

typedef struct {
    const char                 *label;
    size_t                      offset;
} ngx_omnibus_metrics_field_t;

#define ngx_omnibus_cluster_field(name)                                     \
    offsetof(ngx_omnibus_sh_t, cluster) + offsetof(ngx_omnibus_cluster_sh_t, \
                                                   name)

static const ngx_omnibus_metrics_field_t  ngx_omnibus_cluster_fields[] = {
    { "feature=\"dedup\"", ngx_omnibus_cluster_field(fallbacks[0]) },
    { "feature=\"rate_limit\"", ngx_omnibus_cluster_field(fallbacks[1]) },
    { "feature=\"fanout\"", ngx_omnibus_cluster_field(fallbacks[2]) },
    { NULL, 0 },
    { "result=\"claimed\"", ngx_omnibus_cluster_field(claimed) },
    { "result=\"duplicate\"", ngx_omnibus_cluster_field(duplicates) },
    { "result=\"pending\"", ngx_omnibus_cluster_field(pending) },
    { "result=\"rate_limited\"", ngx_omnibus_cluster_field(limited) },
    { NULL, 0 },
    { "outcome=\"sent\"", ngx_omnibus_cluster_field(relayed) },
    { "outcome=\"dropped\"", ngx_omnibus_cluster_field(relay_dropped) },
    { "outcome=\"received\"", ngx_omnibus_cluster_field(received) },
    { "outcome=\"skipped\"", ngx_omnibus_cluster_field(resent) },
    { NULL, 0 },
    { "reason=\"connect\"", ngx_omnibus_cluster_field(errors[0]) },
    { "reason=\"timeout\"", ngx_omnibus_cluster_field(errors[1]) },
    { "reason=\"auth\"", ngx_omnibus_cluster_field(errors[2]) },
    { "reason=\"reply\"", ngx_omnibus_cluster_field(errors[3]) },
    { NULL, 0 },
    { "event=\"acquired\"", ngx_omnibus_cluster_field(lock_acquired) },
    { "event=\"lost\"", ngx_omnibus_cluster_field(lock_lost) },
    { NULL, 0 }
};

static const char  *ngx_omnibus_cluster_families[] = {
    "redis_fallbacks_total",
    "What Redis could not answer, done by this pod alone, by feature.",
    "redis_answers_total",
    "Idempotency claims and rate limit checks answered by Redis.",
    "redis_relay_total",
    "Messages relayed between pods through the stream.",
    "redis_errors_total",
    "Redis connection and command failures, by reason.",
    "redis_lock_total",
    "The cluster lock taken and lost by this pod."
};


static void
ngx_omnibus_metrics_cluster(ngx_omnibus_out_t *out,
    ngx_omnibus_main_conf_t *omcf)
{
    ngx_uint_t                           z, f;
    ngx_omnibus_zone_t                 **zones;
    const ngx_omnibus_metrics_field_t   *field;

    zones = omcf->zones.elts;
    field = ngx_omnibus_cluster_fields;

    for (f = 0; f < 5; f++, field++) {
        ngx_omnibus_metrics_family(out, ngx_omnibus_cluster_families[2 * f],
                                   "counter",
                                   ngx_omnibus_cluster_families[2 * f + 1]);

        for ( /* void */ ; field->label; field++) {
            for (z = 0; z < omcf->zones.nelts; z++) {
                if (zones[z]->cluster == NULL) {
                    continue;
                }

                ngx_omnibus_out_printf(out, "message_bus_%s{zone=\"%V\",%s} "
                                       "%uA\n",
                                       ngx_omnibus_cluster_families[2 * f],
                                       &zones[z]->name, field->label,
                                       *(ngx_atomic_t *)
                                           ((u_char *) zones[z]->sh
                                            + field->offset));
            }
        }
    }

    ngx_omnibus_metrics_family(out, "redis_lock_held", "gauge",
                               "1 while a worker of this pod holds the "
                               "cluster lock.");

    for (z = 0; z < omcf->zones.nelts; z++) {
        if (zones[z]->cluster) {
            ngx_omnibus_out_printf(out, "message_bus_redis_lock_held"
                                   "{zone=\"%V\"} %d\n", &zones[z]->name,
                                   zones[z]->sh->cluster.leader != 0);
        }
    }
}


/* every backend's health in one family each: Kafka, PostgreSQL, Redis */

static void
ngx_omnibus_metrics_backends(ngx_omnibus_out_t *out,
    ngx_omnibus_main_conf_t *omcf)
{
    ngx_uint_t            z, f, up, state;
    ngx_omnibus_zone_t  **zones;

    zones = omcf->zones.elts;

    for (f = 0; f < 2; f++) {
        if (f == 0) {
            ngx_omnibus_metrics_family(out, "backend_up", "gauge",
                                       "1 while the backend answers.");

        } else {
            ngx_omnibus_metrics_family(out, "backend_breaker_state",
                                       "gauge",
                                       "Circuit breaker per backend: "
                                       "0 closed, 1 open, 2 half-open.");
        }

        for (z = 0; z < omcf->zones.nelts; z++) {

#if (NGX_OMNIBUS_HAVE_KAFKA)
            if (ngx_omnibus_metrics_kafka_state(zones[z], &up, &state)) {
                ngx_omnibus_out_printf(out, "message_bus_%s{zone=\"%V\","
                                       "backend=\"kafka\"} %ui\n",
                                       f ? "backend_breaker_state"
                                         : "backend_up",
                                       &zones[z]->name, f ? state : up);
            }
#endif

            if (zones[z]->store) {
                up = f ? 0
                       : (ngx_omnibus_metrics_store_totals(zones[z])->up != 0);
                state = zones[z]->sh->store.breaker.state;

                ngx_omnibus_out_printf(out, "message_bus_%s{zone=\"%V\","
                                       "backend=\"postgresql\"} %ui\n",
                                       f ? "backend_breaker_state"
                                         : "backend_up",
                                       &zones[z]->name, f ? state : up);
            }

            if (zones[z]->cluster) {
                up = ngx_omnibus_cluster_up(zones[z]->sh);
                state = zones[z]->sh->cluster.breaker.state;

                ngx_omnibus_out_printf(out, "message_bus_%s{zone=\"%V\","
                                       "backend=\"redis\"} %ui\n",
                                       f ? "backend_breaker_state"
                                         : "backend_up",
                                       &zones[z]->name, f ? state : up);
            }
        }
    }
}


ngx_int_t
ngx_omnibus_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_uint_t                f, z;
    ngx_omnibus_out_t         out;
    ngx_omnibus_zone_t      **zones;
    ngx_omnibus_main_conf_t  *omcf;

    if (ngx_omnibus_read_only(r, &rc) != NGX_OK) {
        return rc;
    }

    omcf = ngx_http_get_module_main_conf(r, ngx_omnibus_module);
    zones = omcf->zones.elts;

    ngx_omnibus_out_init(&out, r);

    for (f = 0; f < sizeof(ngx_omnibus_families)
                    / sizeof(ngx_omnibus_families[0]); f++)
    {
        ngx_omnibus_metrics_family(&out, ngx_omnibus_families[f].name,
                                   ngx_omnibus_families[f].type,
                                   ngx_omnibus_families[f].help);

        for (z = 0; z < omcf->zones.nelts; z++) {
            ngx_omnibus_metrics_write(&out, f, zones[z]);
        }
    }

#if (NGX_OMNIBUS_HAVE_KAFKA)
    ngx_omnibus_metrics_kafka(&out, omcf);
#endif

    ngx_omnibus_metrics_store(&out, omcf);
    ngx_omnibus_metrics_cluster(&out, omcf);
    ngx_omnibus_metrics_backends(&out, omcf);

    return ngx_omnibus_out_send(&out, NGX_HTTP_OK,
                                "text/plain; version=0.0.4; charset=utf-8");
}
