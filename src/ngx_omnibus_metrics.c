
/*
 * Prometheus text exposition (format 0.0.4) of every zone, and the
 * histograms the hot paths feed with atomic adds.
 */


#include "ngx_omnibus.h"


/* bucket bounds in milliseconds; +Inf is the count */
ngx_uint_t  ngx_omnibus_age_bounds_ms[NGX_OMNIBUS_AGE_BUCKETS] = {
    1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};


static const char  *ngx_omnibus_reasons[NGX_OMNIBUS_REJ_MAX] = {
    "invalid_json", "invalid_topic", "invalid_priority", "empty_message",
    "method_not_allowed", "message_too_large", "backpressure",
    "rate_limited", "zone_full", "invalid_idempotency_key",
    "invalid_content_type"
};


void
ngx_omnibus_histogram_observe(ngx_omnibus_histogram_t *h, ngx_msec_t ms)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_OMNIBUS_AGE_BUCKETS; i++) {
        if (ms <= ngx_omnibus_age_bounds_ms[i]) {
            (void) ngx_atomic_fetch_add(&h->bucket[i], 1);
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&h->count, 1);
    (void) ngx_atomic_fetch_add(&h->sum_us, ms * 1000);
}


static void
ngx_omnibus_metrics_family(ngx_omnibus_out_t *out, const char *name,
    const char *type, const char *help)
{
    ngx_omnibus_out_printf(out, "# HELP message_bus_%s %s\n"
                           "# TYPE message_bus_%s %s\n",
                           name, help, name, type);
}


static void
ngx_omnibus_metrics_histogram(ngx_omnibus_out_t *out, const char *name,
    ngx_str_t *zone, ngx_omnibus_histogram_t *h)
{
    ngx_uint_t  i, cumulative, ms;

    cumulative = 0;

    for (i = 0; i < NGX_OMNIBUS_AGE_BUCKETS; i++) {
        cumulative += h->bucket[i];
        ms = ngx_omnibus_age_bounds_ms[i];

        ngx_omnibus_out_printf(out, "message_bus_%s_bucket{zone=\"%V\","
                               "le=\"%ui.%03ui\"} %ui\n", name, zone,
                               ms / 1000, ms % 1000, cumulative);
    }

    ngx_omnibus_out_printf(out,
                           "message_bus_%s_bucket{zone=\"%V\",le=\"+Inf\"}"
                           " %uA\n"
                           "message_bus_%s_sum{zone=\"%V\"} %uA.%06uA\n"
                           "message_bus_%s_count{zone=\"%V\"} %uA\n",
                           name, zone, h->count,
                           name, zone, h->sum_us / 1000000,
                           h->sum_us % 1000000,
                           name, zone, h->count);
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

    for (s = 0; s < zone->sh->nshards; s++) {
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
ngx_omnibus_metric_retained(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_uint_t  s;

    for (s = 0; s < zone->sh->nshards; s++) {
        ngx_omnibus_out_printf(out, "message_bus_retained_messages{"
                               "zone=\"%V\",shard=\"%ui\"} %ui\n",
                               name, s, zone->sh->shards[s].retained);
    }
}


static void
ngx_omnibus_metric_paused(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_uint_t  s;

    for (s = 0; s < zone->sh->nshards; s++) {
        ngx_omnibus_out_printf(out, "message_bus_shard_paused{"
                               "zone=\"%V\",shard=\"%ui\"} %ui\n",
                               name, s, zone->sh->shards[s].paused ? 1 : 0);
    }
}


static void
ngx_omnibus_metric_age(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_str_t *name)
{
    ngx_omnibus_metrics_histogram(out, "message_age_seconds", name,
                                  &zone->sh->age);
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
    { "message_age_seconds", "histogram",
      "Time from publish to dispatch.", ngx_omnibus_metric_age },
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
