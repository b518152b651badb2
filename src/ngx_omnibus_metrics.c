
/*
 * Prometheus text exposition (format 0.0.4) of every zone, and the
 * histograms the hot paths feed with atomic adds.
 */


#include "ngx_omnibus.h"


/* bucket bounds in microseconds; +Inf is the count */
static uint64_t  ngx_omnibus_bounds_us[NGX_OMNIBUS_BUCKETS] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000, 30000000, 60000000
};


static const char  *ngx_omnibus_reasons[NGX_OMNIBUS_REJ_MAX] = {
    "invalid_json", "invalid_topic", "invalid_priority", "empty_message",
    "method_not_allowed", "message_too_large", "backpressure",
    "rate_limited", "zone_full", "invalid_idempotency_key",
    "invalid_content_type"
};


void
ngx_omnibus_histogram_observe(ngx_omnibus_histogram_t *h, uint64_t us)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_OMNIBUS_BUCKETS; i++) {
        if (us <= ngx_omnibus_bounds_us[i]) {
            (void) ngx_atomic_fetch_add(&h->bucket[i], 1);
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&h->count, 1);
    (void) ngx_atomic_fetch_add(&h->sum_us, us);
}


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


/* one family across every zone: Prometheus wants families contiguous */

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


/* per shard: which field of the shard */

static void
ngx_omnibus_metric_shard_field(ngx_omnibus_out_t *out,
    ngx_omnibus_zone_t *zone, ngx_str_t *name, const char *family,
    size_t offset)
{
    u_char      *field;
    ngx_uint_t   s;

    for (s = 0; s < ngx_omnibus_shards_shown(zone->sh); s++) {
        field = (u_char *) &zone->sh->shards[s] + offset;

        ngx_omnibus_out_printf(out, "message_bus_%s{zone=\"%V\","
                               "shard=\"%ui\"} %ui\n", family, name, s,
                               *(ngx_uint_t *) field);
    }
}


static void
ngx_omnibus_metric_retained(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_metric_shard_field(out, zone, name, "retained_messages",
                                   offsetof(ngx_omnibus_shard_t, retained));
}


static void
ngx_omnibus_metric_paused(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_metric_shard_field(out, zone, name, "shard_paused",
                                   offsetof(ngx_omnibus_shard_t, paused));
}


static void
ngx_omnibus_metric_age(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_metrics_histogram(out, "message_age_seconds",
                                  ngx_omnibus_metrics_labels(out, name, NULL),
                                  &zone->sh->age);
}


static void
ngx_omnibus_metric_dispatch(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_metrics_histogram(out, "dispatch_duration_seconds",
                                  ngx_omnibus_metrics_labels(out, name, NULL),
                                  &zone->sh->dispatch);
}


static void
ngx_omnibus_metric_latency(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_uint_t             i;
    ngx_omnibus_route_t  **routes;

    routes = zone->routes.elts;

    for (i = 0; i < zone->routes.nelts; i++) {
        ngx_omnibus_metrics_histogram(out, "callback_latency_seconds",
                                 ngx_omnibus_metrics_labels(out, name,
                                                            routes[i]),
                                 &zone->sh->routes[routes[i]->slot].latency);
    }
}


/* per route: which counter of the route's shared state */

static void
ngx_omnibus_metric_route_field(ngx_omnibus_out_t *out,
    ngx_omnibus_zone_t *zone, ngx_str_t *name, const char *family,
    size_t offset)
{
    ngx_uint_t               i;
    ngx_omnibus_route_t    **routes;
    ngx_omnibus_route_sh_t  *rs;

    routes = zone->routes.elts;

    for (i = 0; i < zone->routes.nelts; i++) {
        rs = &zone->sh->routes[routes[i]->slot];

        ngx_omnibus_out_printf(out, "message_bus_%s{%s} %uA\n", family,
                               ngx_omnibus_metrics_labels(out, name,
                                                          routes[i]),
                               *(ngx_atomic_t *) ((u_char *) rs + offset));
    }
}


static void
ngx_omnibus_metric_errors(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_metric_route_field(out, zone, name, "callback_errors_total",
                                   offsetof(ngx_omnibus_route_sh_t, errors));
}


static void
ngx_omnibus_metric_route_delivered(ngx_omnibus_out_t *out,
    ngx_omnibus_zone_t *zone, ngx_str_t *name)
{
    ngx_omnibus_metric_route_field(out, zone, name,
                                   "route_delivered_total",
                                   offsetof(ngx_omnibus_route_sh_t,
                                            delivered));
}


static void
ngx_omnibus_metric_route_dead(ngx_omnibus_out_t *out,
    ngx_omnibus_zone_t *zone, ngx_str_t *name)
{
    ngx_omnibus_metric_route_field(out, zone, name, "route_dead_total",
                                   offsetof(ngx_omnibus_route_sh_t, dead));
}


static void
ngx_omnibus_metric_breaker(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_metric_route_field(out, zone, name, "breaker_state",
                                   offsetof(ngx_omnibus_route_sh_t,
                                            breaker));
}


static void
ngx_omnibus_metric_retries(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_metric_shard_field(out, zone, name, "publish_retries_total",
                                   offsetof(ngx_omnibus_shard_t, retries));
}


static void
ngx_omnibus_metric_inflight(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_metric_shard_field(out, zone, name, "inflight_messages",
                                   offsetof(ngx_omnibus_shard_t, ninflight));
}


static void
ngx_omnibus_metric_zone_field(ngx_omnibus_out_t *out,
    ngx_omnibus_zone_t *zone, ngx_str_t *name, const char *family,
    ngx_uint_t value)
{
    ngx_omnibus_out_printf(out, "message_bus_%s{zone=\"%V\"} %ui\n", family,
                           name, value);
}


static void
ngx_omnibus_metric_delivered(ngx_omnibus_out_t *out,
    ngx_omnibus_zone_t *zone, ngx_str_t *name)
{
    ngx_omnibus_metric_zone_field(out, zone, name, "delivered_total",
                                  zone->sh->delivered);
}


static void
ngx_omnibus_metric_dlq(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_metric_zone_field(out, zone, name, "dlq_size",
                                  zone->sh->dlq_size);
}


static void
ngx_omnibus_metric_dead(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_metric_zone_field(out, zone, name, "dead_lettered_total",
                                  zone->sh->dead);
}


static void
ngx_omnibus_metric_dlq_evicted(ngx_omnibus_out_t *out,
    ngx_omnibus_zone_t *zone, ngx_str_t *name)
{
    ngx_omnibus_metric_zone_field(out, zone, name, "dlq_evicted_total",
                                  zone->sh->dlq_evicted);
}


static void
ngx_omnibus_metric_dlq_replayed(ngx_omnibus_out_t *out,
    ngx_omnibus_zone_t *zone, ngx_str_t *name)
{
    ngx_omnibus_metric_zone_field(out, zone, name, "dlq_replayed_total",
                                  zone->sh->dlq_replayed);
}


static void
ngx_omnibus_metric_subscribers(ngx_omnibus_out_t *out,
    ngx_omnibus_zone_t *zone, ngx_str_t *name)
{
    ngx_omnibus_metric_zone_field(out, zone, name, "subscribers",
                                  zone->sh->subscribers);
}


static void
ngx_omnibus_metric_concurrency(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_metric_shard_field(out, zone, name, "shard_concurrency",
                                   offsetof(ngx_omnibus_shard_t, concurrency));
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
ngx_omnibus_metric_slow(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_metric_zone_field(out, zone, name,
                                  "slow_subscribers_dropped_total",
                                  zone->sh->slow_dropped);
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
ngx_omnibus_metric_published(ngx_omnibus_out_t *out,
    ngx_omnibus_zone_t *zone, ngx_str_t *name)
{
    ngx_omnibus_out_printf(out, "message_bus_published_total{zone=\"%V\"} "
                           "%uA\n", name, zone->sh->published);
}


static void
ngx_omnibus_metric_rejected(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_OMNIBUS_REJ_MAX; i++) {
        ngx_omnibus_out_printf(out, "message_bus_rejected_total{zone=\"%V\","
                               "reason=\"%s\"} %uA\n", name,
                               ngx_omnibus_reasons[i], zone->sh->rejected[i]);
    }
}


static void
ngx_omnibus_metric_dedup(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_out_printf(out, "message_bus_deduplicated_total{zone=\"%V\"} "
                           "%uA\n", name, zone->sh->deduplicated);
}


static void
ngx_omnibus_metric_unrouted(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_out_printf(out, "message_bus_unrouted_total{zone=\"%V\"} "
                           "%uA\n", name, zone->sh->unrouted);
}


static void
ngx_omnibus_metric_shards(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_out_printf(out, "message_bus_shards{zone=\"%V\"} %ui\n",
                           name, zone->sh->nshards);
}


static void
ngx_omnibus_metric_ring(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_out_printf(out, "message_bus_ring_version{zone=\"%V\"} %uA\n",
                           name, zone->sh->ring_version);
}


static void
ngx_omnibus_metric_used(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_uint_t  pages;

    pages = (zone->shpool->end - zone->shpool->start) / ngx_pagesize;

    ngx_omnibus_out_printf(out, "message_bus_zone_used_bytes{zone=\"%V\"} "
                           "%ui\n", name,
                           (pages - zone->shpool->pfree) * ngx_pagesize);
}


static void
ngx_omnibus_metric_free(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_out_printf(out, "message_bus_zone_free_bytes{zone=\"%V\"} "
                           "%ui\n", name, zone->shpool->pfree * ngx_pagesize);
}


static void
ngx_omnibus_metric_dedup_entries(ngx_omnibus_out_t *out,
    ngx_omnibus_zone_t *zone, ngx_str_t *name)
{
    ngx_omnibus_out_printf(out, "message_bus_dedup_entries{zone=\"%V\"} "
                           "%ui\n", name, zone->sh->dedup_entries);
}


static struct {
    const char             *name;
    const char             *type;
    const char             *help;
    ngx_omnibus_metric_pt   write;
} ngx_omnibus_families[] = {

    { "queue_size", "gauge", "Messages queued per shard and priority class.",
      ngx_omnibus_metric_queue },
    { "retained_messages", "gauge",
      "Dispatched messages kept per shard for resuming subscribers.",
      ngx_omnibus_metric_retained },
    { "shard_paused", "gauge", "1 while the admin API holds the shard.",
      ngx_omnibus_metric_paused },
    { "inflight_messages", "gauge",
      "Messages dispatched and not yet done with every route.",
      ngx_omnibus_metric_inflight },
    { "message_age_seconds", "histogram",
      "Time from publish to dispatch.", ngx_omnibus_metric_age },
    { "dispatch_duration_seconds", "histogram",
      "Time from dispatch until every route is done with a message.",
      ngx_omnibus_metric_dispatch },
    { "callback_latency_seconds", "histogram",
      "Duration of webhook attempts, per route.",
      ngx_omnibus_metric_latency },
    { "callback_errors_total", "counter",
      "Failed webhook attempts, per route.", ngx_omnibus_metric_errors },
    { "route_delivered_total", "counter",
      "Messages delivered, per route.", ngx_omnibus_metric_route_delivered },
    { "route_dead_total", "counter",
      "Messages sent to the dead letter queue, per route.",
      ngx_omnibus_metric_route_dead },
    { "breaker_state", "gauge",
      "Circuit breaker per route: 0 closed, 1 open, 2 half-open.",
      ngx_omnibus_metric_breaker },
    { "publish_retries_total", "counter",
      "Delivery attempts retried, per shard.", ngx_omnibus_metric_retries },
    { "delivered_total", "counter",
      "Deliveries that succeeded (one per message and route).",
      ngx_omnibus_metric_delivered },
    { "dead_lettered_total", "counter",
      "Deliveries that went to the dead letter queue.",
      ngx_omnibus_metric_dead },
    { "dlq_size", "gauge", "Entries in the dead letter queue.",
      ngx_omnibus_metric_dlq },
    { "dlq_evicted_total", "counter",
      "Dead letter entries dropped to make room.",
      ngx_omnibus_metric_dlq_evicted },
    { "dlq_replayed_total", "counter",
      "Dead letter entries queued again by replay.",
      ngx_omnibus_metric_dlq_replayed },
    { "subscribers", "gauge", "Connected SSE and long-poll subscribers.",
      ngx_omnibus_metric_subscribers },
    { "slow_subscribers_dropped_total", "counter",
      "SSE subscribers dropped for not reading their stream.",
      ngx_omnibus_metric_slow },
    { "topic_throughput_total", "counter",
      "Messages published per topic; topics past the cap count as _other.",
      ngx_omnibus_metric_topics },
    { "published_total", "counter", "Messages accepted into a queue.",
      ngx_omnibus_metric_published },
    { "rejected_total", "counter", "Publishes refused, by reason.",
      ngx_omnibus_metric_rejected },
    { "deduplicated_total", "counter",
      "Publishes answered as duplicates of an earlier message.",
      ngx_omnibus_metric_dedup },
    { "unrouted_total", "counter",
      "Messages dispatched with no route or subscriber to take them.",
      ngx_omnibus_metric_unrouted },
    { "dedup_entries", "gauge", "Idempotency keys remembered.",
      ngx_omnibus_metric_dedup_entries },
    { "shards", "gauge", "Shards on the ring.", ngx_omnibus_metric_shards },
    { "shard_concurrency", "gauge",
      "Concurrent deliveries per shard and route.",
      ngx_omnibus_metric_concurrency },
    { "autoscale_decisions_total", "counter",
      "Autoscaler decisions, by action.", ngx_omnibus_metric_autoscale },
    { "ring_version", "gauge", "Changes of the hash ring so far.",
      ngx_omnibus_metric_ring },
    { "zone_used_bytes", "gauge", "Shared memory pages in use, in bytes.",
      ngx_omnibus_metric_used },
    { "zone_free_bytes", "gauge", "Shared memory pages free, in bytes.",
      ngx_omnibus_metric_free },
};


ngx_int_t
ngx_omnibus_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_uint_t                f, z;
    ngx_omnibus_out_t         out;
    ngx_omnibus_zone_t      **zones;
    ngx_omnibus_main_conf_t  *omcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
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
            ngx_omnibus_families[f].write(&out, zones[z], &zones[z]->name);
        }
    }

    return ngx_omnibus_out_send(&out, NGX_HTTP_OK,
                                "text/plain; version=0.0.4; charset=utf-8");
}
