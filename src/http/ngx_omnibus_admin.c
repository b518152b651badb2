
/*
 * The admin API, relative to its location: GET / for the zone's status,
 * POST and DELETE shards, POST shards/<i>/pause and shards/<i>/resume,
 * GET and DELETE dlq, POST dlq/replay.  Guard the location like any
 * other (allow/deny, auth_request).
 */


#include <ngx_omnibus_http.h>


static ngx_int_t ngx_omnibus_admin_status(ngx_http_request_t *r,
    ngx_omnibus_zone_t *zone);
static ngx_int_t ngx_omnibus_admin_pause(ngx_http_request_t *r,
    ngx_omnibus_zone_t *zone, ngx_str_t *path);
static ngx_int_t ngx_omnibus_admin_dlq(ngx_http_request_t *r,
    ngx_omnibus_zone_t *zone, ngx_str_t *path);
static ngx_int_t ngx_omnibus_admin_dlq_list(ngx_http_request_t *r,
    ngx_omnibus_zone_t *zone, ngx_uint_t limit);
static ngx_int_t ngx_omnibus_admin_scale(ngx_http_request_t *r,
    ngx_omnibus_zone_t *zone);
#if (NGX_OMNIBUS_HAVE_KAFKA)
static ngx_int_t ngx_omnibus_admin_kafka_replay(ngx_http_request_t *r,
    ngx_omnibus_zone_t *zone);
#endif


ngx_int_t
ngx_omnibus_admin_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_str_t                  path;
    ngx_omnibus_loc_conf_t    *olcf;
    ngx_http_core_loc_conf_t  *clcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_omnibus_module);
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (ngx_omnibus_discard_body(r, &rc) != NGX_OK) {
        return rc;
    }

    /* the resource path below the location prefix */

    path = r->uri;

    if (path.len >= clcf->name.len
        && ngx_strncmp(path.data, clcf->name.data, clcf->name.len) == 0)
    {
        path.data += clcf->name.len;
        path.len -= clcf->name.len;
    }

    while (path.len && path.data[0] == '/') {
        path.data++;
        path.len--;
    }

    if (path.len == 0) {
        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
            return ngx_omnibus_reply_not_allowed(r, "GET, HEAD");
        }

        return ngx_omnibus_admin_status(r, olcf->admin);
    }

    if (path.len >= 3 && ngx_strncmp(path.data, "dlq", 3) == 0) {
        path.data += 3;
        path.len -= 3;

        return ngx_omnibus_admin_dlq(r, olcf->admin, &path);
    }

#if (NGX_OMNIBUS_HAVE_KAFKA)

    if (path.len == 21 && ngx_strncmp(path.data, "kafka/fallback/replay", 21)
                          == 0)
    {
        if (!(r->method & NGX_HTTP_POST)) {
            return ngx_omnibus_reply_not_allowed(r, "POST");
        }

        return ngx_omnibus_admin_kafka_replay(r, olcf->admin);
    }

#endif

    if ((path.len == 6 && ngx_strncmp(path.data, "shards", 6) == 0)
        || (path.len == 7 && ngx_strncmp(path.data, "shards/", 7) == 0))
    {
        if (!(r->method & (NGX_HTTP_POST|NGX_HTTP_DELETE))) {
            return ngx_omnibus_reply_not_allowed(r, "POST, DELETE");
        }

        return ngx_omnibus_admin_scale(r, olcf->admin);
    }

    if (path.len > 7 && ngx_strncmp(path.data, "shards/", 7) == 0) {
        if (!(r->method & NGX_HTTP_POST)) {
            return ngx_omnibus_reply_not_allowed(r, "POST");
        }

        path.data += 7;
        path.len -= 7;

        return ngx_omnibus_admin_pause(r, olcf->admin, &path);
    }

    return ngx_omnibus_reply_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                   "no such admin resource", 0);
}


/* POST shards adds one, DELETE shards drains and removes the last */

static ngx_int_t
ngx_omnibus_admin_scale(ngx_http_request_t *r, ngx_omnibus_zone_t *zone)
{
    ngx_int_t           rc, delta;
    ngx_uint_t          n, changed;
    ngx_atomic_uint_t   version;
    ngx_omnibus_out_t   out;

    delta = (r->method == NGX_HTTP_POST) ? 1 : -1;

    ngx_shmtx_lock(&zone->shpool->mutex);

    rc = ngx_omnibus_scale_locked(zone, delta, r->connection->log);
    n = zone->sh->nshards;
    changed = zone->sh->fence_shard;
    version = zone->sh->ring_version;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (rc == NGX_BUSY) {
        return ngx_omnibus_reply_error(r, NGX_HTTP_CONFLICT,
                                       "ring_change_in_progress",
                                       "a shard is still being added or "
                                       "drained; retry when it is done", 1);
    }

    if (rc == NGX_DECLINED) {
        return ngx_omnibus_reply_error(r, NGX_HTTP_CONFLICT, "shard_limit",
                                       delta > 0 ? "the zone is at max_shards"
                                                 : "the zone is at min_shards",
                                       0);
    }

    ngx_omnibus_notify_all(zone);

    ngx_omnibus_out_init(&out, r);
    ngx_omnibus_out_printf(&out, "{\"%s\":%ui,\"shards\":%ui,"
                           "\"ring_version\":%uA}\n",
                           delta > 0 ? "added" : "removing", changed, n,
                           version);

    return ngx_omnibus_out_send(&out, NGX_HTTP_OK, "application/json");
}


static ngx_int_t
ngx_omnibus_admin_dlq_list(ngx_http_request_t *r, ngx_omnibus_zone_t *zone,
    ngx_uint_t limit)
{
    uint64_t                 now;
    ngx_uint_t               i, size;
    ngx_array_t              items;
    ngx_omnibus_out_t        out;
    ngx_omnibus_dlq_item_t  *it;

    if (ngx_array_init(&items, r->pool, ngx_min(limit, 64) + 1,
                       sizeof(ngx_omnibus_dlq_item_t))
        != NGX_OK
        || ngx_omnibus_dlq_read(zone, r->pool, limit, &items, &size)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    now = ngx_omnibus_now_ms();
    it = items.elts;

    ngx_omnibus_out_init(&out, r);
    ngx_omnibus_out_printf(&out, "{\"size\":%ui,\"entries\":[", size);

    for (i = 0; i < items.nelts; i++) {
        ngx_omnibus_out_printf(&out, "%s{\"id\":\"%*s\",\"topic\":",
                               i ? "," : "", (size_t) NGX_OMNIBUS_ID_LEN,
                               it[i].id);
        ngx_omnibus_out_json_str(&out, it[i].topic.data, it[i].topic.len);
        ngx_omnibus_out_printf(&out, ",\"priority\":%ui,\"route\":",
                               it[i].priority);

        if (it[i].route) {
            ngx_omnibus_out_json_str(&out, it[i].route->name.data,
                                     it[i].route->name.len);

        } else {
            ngx_omnibus_out_printf(&out, "null");
        }

        ngx_omnibus_out_printf(&out, ",\"attempts\":%ui,\"error\":",
                               it[i].attempts);
        ngx_omnibus_out_json_str(&out, it[i].error.data, it[i].error.len);
        ngx_omnibus_out_printf(&out, ",\"failed_at\":%uL.%03uL,"
                               "\"age_seconds\":%uL,\"payload\":",
                               it[i].failed / 1000, it[i].failed % 1000,
                               now > it[i].failed
                               ? (now - it[i].failed) / 1000 : 0);
        ngx_omnibus_out_payload(&out, &it[i].payload, it[i].json);
        ngx_omnibus_out_printf(&out, "}");
    }

    ngx_omnibus_out_printf(&out, "]}\n");

    return ngx_omnibus_out_send(&out, NGX_HTTP_OK, "application/json");
}


/* dlq: GET list, DELETE purge; dlq/replay: POST */

static ngx_int_t
ngx_omnibus_admin_dlq(ngx_http_request_t *r, ngx_omnibus_zone_t *zone,
    ngx_str_t *path)
{
    ngx_int_t          n;
    ngx_str_t          arg;
    ngx_uint_t         count;
    ngx_omnibus_out_t  out;

    ngx_omnibus_out_init(&out, r);

    if (path->len == 0 || (path->len == 1 && path->data[0] == '/')) {
        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_DELETE))) {
            return ngx_omnibus_reply_not_allowed(r, "GET, HEAD, DELETE");
        }

        if (r->method == NGX_HTTP_DELETE) {
            count = ngx_omnibus_dlq_purge(zone);

            ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                          "omnibus zone \"%V\": %ui dead letter(s) purged "
                          "by the admin API", &zone->name, count);

            ngx_omnibus_out_printf(&out, "{\"purged\":%ui}\n", count);

            return ngx_omnibus_out_send(&out, NGX_HTTP_OK,
                                        "application/json");
        }

        n = 100;

        if (ngx_http_arg(r, (u_char *) "limit", 5, &arg) == NGX_OK) {
            n = ngx_atoi(arg.data, arg.len);

            if (n == NGX_ERROR || n > 10000) {
                return ngx_omnibus_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                               "invalid_limit",
                                               "limit is 0 to 10000", 0);
            }
        }

        return ngx_omnibus_admin_dlq_list(r, zone, n);
    }

    if (path->len == 7 && ngx_strncmp(path->data, "/replay", 7) == 0) {
        if (!(r->method & NGX_HTTP_POST)) {
            return ngx_omnibus_reply_not_allowed(r, "POST");
        }

        n = -1;

        if (ngx_http_arg(r, (u_char *) "max_age", 7, &arg) == NGX_OK) {
            n = ngx_atoi(arg.data, arg.len);

            if (n == NGX_ERROR) {
                return ngx_omnibus_reply_error(r, NGX_HTTP_BAD_REQUEST,
                                               "invalid_max_age",
                                               "max_age is a number of "
                                               "seconds", 0);
            }
        }

        count = ngx_omnibus_dlq_replay(zone, (time_t) n, r->pool);

        ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                      "omnibus zone \"%V\": %ui dead letter(s) replayed by "
                      "the admin API", &zone->name, count);

        ngx_omnibus_out_printf(&out, "{\"replayed\":%ui}\n", count);

        return ngx_omnibus_out_send(&out, NGX_HTTP_OK, "application/json");
    }

    return ngx_omnibus_reply_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                   "no such admin resource", 0);
}


/* <i>/pause or <i>/resume */

static ngx_int_t
ngx_omnibus_admin_pause(ngx_http_request_t *r, ngx_omnibus_zone_t *zone,
    ngx_str_t *path)
{
    u_char             *slash;
    ngx_int_t           i;
    ngx_uint_t          pause;
    ngx_str_t           verb;
    ngx_omnibus_out_t   out;

    slash = ngx_strlchr(path->data, path->data + path->len, '/');
    if (slash == NULL) {
        goto not_found;
    }

    verb.data = slash + 1;
    verb.len = path->data + path->len - verb.data;

    if (verb.len == 5 && ngx_strncmp(verb.data, "pause", 5) == 0) {
        pause = 1;

    } else if (verb.len == 6 && ngx_strncmp(verb.data, "resume", 6) == 0) {
        pause = 0;

    } else {
        goto not_found;
    }

    i = ngx_atoi(path->data, slash - path->data);

    if (i == NGX_ERROR
        || (ngx_uint_t) i >= ngx_omnibus_shards_shown(zone->sh))
    {
        return ngx_omnibus_reply_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                       "no such shard", 0);
    }

    ngx_shmtx_lock(&zone->shpool->mutex);
    zone->sh->shards[i].paused = pause;
    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (!pause) {
        ngx_omnibus_notify(zone, i);
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "omnibus zone \"%V\": shard %i %s by the admin API",
                  &zone->name, i, pause ? "paused" : "resumed");

    ngx_omnibus_out_init(&out, r);
    ngx_omnibus_out_printf(&out, "{\"shard\":%i,\"paused\":%s}\n", i,
                           pause ? "true" : "false");

    return ngx_omnibus_out_send(&out, NGX_HTTP_OK, "application/json");

not_found:

    return ngx_omnibus_reply_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                   "no such admin resource", 0);
}


static ngx_int_t
ngx_omnibus_admin_status(ngx_http_request_t *r, ngx_omnibus_zone_t *zone)
{
    ngx_uint_t                i, j, n, pages, pfree;
    ngx_omnibus_sh_t         *sh;
    ngx_omnibus_out_t         out;
    ngx_omnibus_shard_t      *shard, *snap;
    ngx_omnibus_route_t     **routes;
    ngx_omnibus_route_sh_t   *rs;
    ngx_omnibus_store_proc_t  store;

    sh = zone->sh;

    /* a consistent snapshot, written out after the lock is released */

    snap = ngx_palloc(r->pool, sh->cap_shards * sizeof(ngx_omnibus_shard_t));
    if (snap == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    n = ngx_omnibus_shards_shown(sh);
    ngx_memcpy(snap, sh->shards, sh->cap_shards * sizeof(ngx_omnibus_shard_t));
    pfree = zone->shpool->pfree;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    pages = (zone->shpool->end - zone->shpool->start) / ngx_pagesize;

    ngx_omnibus_out_init(&out, r);

    ngx_omnibus_out_printf(&out, "{\"zone\":");
    ngx_omnibus_out_json_str(&out, zone->name.data, zone->name.len);
    ngx_omnibus_out_printf(&out,
                           ",\"size\":%uz,\"bytes_used\":%ui,"
                           "\"bytes_free\":%ui,\"ring_version\":%uA,"
                           "\"workers\":%ui,\"min_shards\":%ui,"
                           "\"max_shards\":%ui,\"queue_size\":%ui,"
                           "\"retain\":%ui,",
                           zone->shm_zone->shm.size,
                           (pages - pfree) * ngx_pagesize,
                           pfree * ngx_pagesize, sh->ring_version,
                           ngx_omnibus_workers, zone->min_shards,
                           zone->max_shards, sh->queue_size, sh->retain);
    ngx_omnibus_out_printf(&out,
                           "\"published\":%uA,\"deduplicated\":%uA,"
                           "\"unrouted\":%uA,\"delivered\":%uA,"
                           "\"dead_lettered\":%uA,\"dlq_size\":%ui,"
                           "\"routes\":[",
                           sh->published, sh->deduplicated, sh->unrouted,
                           sh->delivered, sh->dead, sh->dlq_size);

    routes = zone->routes.elts;

    for (i = 0; i < zone->routes.nelts; i++) {
        rs = ngx_omnibus_route_sh(routes[i]);

        ngx_omnibus_out_printf(&out, "%s{\"name\":", i ? "," : "");
        ngx_omnibus_out_json_str(&out, routes[i]->name.data,
                                 routes[i]->name.len);
        ngx_omnibus_out_printf(&out, ",\"pattern\":");
        ngx_omnibus_out_json_str(&out, routes[i]->pattern.data,
                                 routes[i]->pattern.len);
        ngx_omnibus_out_printf(&out, ",\"url\":");
        ngx_omnibus_out_json_str(&out, routes[i]->url.data,
                                 routes[i]->url.len);
        ngx_omnibus_out_printf(&out, ",\"sink\":\"%V\",\"breaker\":\"%s\","
                               "\"consecutive_failures\":%ui,"
                               "\"delivered\":%uA,\"errors\":%uA,"
                               "\"dead_lettered\":%uA",
                               &routes[i]->sink->name,
                               ngx_omnibus_breaker_name(rs->breaker.state),
                               rs->breaker.failures, rs->delivered,
                               rs->errors, rs->dead);

#if (NGX_OMNIBUS_HAVE_KAFKA)

        if (routes[i]->sink == &ngx_omnibus_sink_kafka) {
            ngx_omnibus_out_printf(&out, ",\"kafka\":{\"up\":%s,"
                                   "\"fallback\":%uA,\"replayed\":%uA,"
                                   "\"connection_failures\":{",
                                   rs->sink_up ? "true" : "false",
                                   rs->diverted, rs->replayed);

            for (j = 0; j < NGX_OMNIBUS_KAFKA_REASONS; j++) {
                ngx_omnibus_out_printf(&out, "%s\"%s\":%uA", j ? "," : "",
                                       ngx_omnibus_kafka_reasons[j],
                                       rs->sink_failures[j]);
            }

            ngx_omnibus_out_printf(&out, "}}");
        }

#endif

        ngx_omnibus_out_printf(&out, "}");
    }

    ngx_omnibus_out_printf(&out, "]");

#if (NGX_OMNIBUS_HAVE_KAFKA)

    if (zone->inputs.nelts) {
        ngx_omnibus_out_printf(&out, ",\"kafka_consumers\":{\"count\":%ui,"
                               "\"up\":%s,\"consumed\":%uA}",
                               zone->inputs.nelts,
                               sh->input_up ? "true" : "false",
                               sh->input_consumed);
    }

#endif

    if (zone->store) {
        ngx_omnibus_store_totals(sh, &store);

        ngx_omnibus_out_printf(&out, ",\"store\":{\"backend\":\"postgresql\","
                               "\"mode\":\"%s\",\"state\":\"%s\","
                               "\"up\":%s,\"breaker\":\"%s\","
                               "\"backlog\":%uA,\"generation\":%uA,"
                               "\"recovered\":%uA,\"adopted\":%uA,"
                               "\"connections\":{"
                               "\"idle\":%uA,\"busy\":%uA,"
                               "\"connecting\":%uA}}",
                               zone->store->sync ? "sync" : "async",
                               sh->store.state == NGX_OMNIBUS_STORE_READY
                               ? "ready" : "loading",
                               store.up ? "true" : "false",
                               ngx_omnibus_breaker_name(
                                   sh->store.breaker.state),
                               store.backlog, sh->store.generation,
                               sh->store.recovered, sh->store.adopted,
                               store.connections[0],
                               store.connections[1],
                               store.connections[2]);
    }

    if (zone->cluster) {
        ngx_omnibus_out_printf(&out, ",\"redis\":{\"up\":%s,"
                               "\"breaker\":\"%s\",\"lock\":\"%s\","
                               "\"claimed\":%uA,\"duplicates\":%uA,"
                               "\"pending\":%uA,"
                               "\"rate_limited\":%uA,\"relayed\":%uA,"
                               "\"relay_dropped\":%uA,\"received\":%uA,"
                               "\"skipped\":%uA,\"fallbacks\":{"
                               "\"dedup\":%uA,\"rate_limit\":%uA,"
                               "\"fanout\":%uA},\"stream_last\":\"%*s\"}",
                               ngx_omnibus_cluster_up(sh) ? "true" : "false",
                               ngx_omnibus_breaker_name(
                                   sh->cluster.breaker.state),
                               !sh->cluster.lock_known ? "unknown"
                               : sh->cluster.leader ? "held" : "elsewhere",
                               sh->cluster.claimed, sh->cluster.duplicates,
                               sh->cluster.pending,
                               sh->cluster.limited, sh->cluster.relayed,
                               sh->cluster.relay_dropped,
                               sh->cluster.received, sh->cluster.resent,
                               sh->cluster.fallbacks[0],
                               sh->cluster.fallbacks[1],
                               sh->cluster.fallbacks[2],
                               sh->cluster.stream_last_len,
                               sh->cluster.stream_last);
    }

    ngx_omnibus_out_printf(&out, ",\"ring_change\":");

    if (sh->fence) {
        ngx_omnibus_out_printf(&out, "{\"%s\":%ui}",
                               sh->fence == NGX_OMNIBUS_FENCE_ADD
                               ? "adding" : "removing", sh->fence_shard);

    } else {
        ngx_omnibus_out_printf(&out, "null");
    }

    ngx_omnibus_out_printf(&out, ",\"shards\":[");

    for (i = 0; i < n; i++) {
        shard = &snap[i];

        ngx_omnibus_out_printf(&out,
                               "%s{\"index\":%ui,\"queued\":%ui,"
                               "\"high_queued\":%ui,\"inflight\":%ui,"
                               "\"retained\":%ui,"
                               "\"paused\":%s,\"backpressure\":%s,"
                               "\"draining\":%s,"
                               "\"owner\":%ui,\"concurrency\":%ui,"
                               "\"published\":%uA,\"dispatched\":%uA}",
                               i ? "," : "", i, shard->queued,
                               shard->high_queued, shard->ninflight,
                               shard->retained,
                               shard->paused ? "true" : "false",
                               shard->backpressure ? "true" : "false",
                               shard->draining ? "true" : "false",
                               ngx_omnibus_shard_owner(i),
                               shard->concurrency, shard->published,
                               shard->dispatched);
    }

    ngx_omnibus_out_printf(&out, "]}\n");

    return ngx_omnibus_out_send(&out, NGX_HTTP_OK, "application/json");
}


#if (NGX_OMNIBUS_HAVE_KAFKA)

typedef struct {
    ngx_http_request_t            *r;
    void                          *replay;       /* NULL once answered */
    ngx_omnibus_kafka_replayed_t   result;
} ngx_omnibus_admin_replay_t;


static ngx_int_t
ngx_omnibus_admin_kafka_reply(ngx_http_request_t *r,
    ngx_omnibus_kafka_replayed_t *result)
{
    ngx_omnibus_out_t  out;

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "omnibus kafka fallback: %ui record(s) replayed, %ui "
                  "acknowledged, %ui kept", result->sent, result->acked,
                  result->kept);

    ngx_omnibus_out_init(&out, r);
    ngx_omnibus_out_printf(&out, "{\"replayed\":%ui,\"acknowledged\":%ui,"
                           "\"kept\":%ui}\n", result->sent, result->acked,
                           result->kept);

    return ngx_omnibus_out_send(&out, NGX_HTTP_OK, "application/json");
}


/* from a delivery report, outside any event of the request's */

static void
ngx_omnibus_admin_kafka_replayed(void *data,
    ngx_omnibus_kafka_replayed_t *result)
{
    ngx_connection_t            *c;
    ngx_http_request_t          *r;
    ngx_omnibus_admin_replay_t  *ctx;

    ctx = data;
    r = ctx->r;
    c = r->connection;

    ctx->replay = NULL;

    ngx_http_finalize_request(r, ngx_omnibus_admin_kafka_reply(r, result));
    ngx_http_run_posted_requests(c);
}


/* the request ends before the replay (the client went away) */

static void
ngx_omnibus_admin_kafka_cleanup(void *data)
{
    ngx_omnibus_admin_replay_t  *ctx;

    ctx = data;

    if (ctx->replay) {
        ngx_omnibus_kafka_replay_detach(ctx->replay);
        ctx->replay = NULL;
    }
}


/* the answer waits for the last delivery report */

static ngx_int_t
ngx_omnibus_admin_kafka_replay(ngx_http_request_t *r, ngx_omnibus_zone_t *zone)
{
    ngx_int_t                    rc;
    ngx_http_cleanup_t          *cln;
    ngx_omnibus_admin_replay_t  *ctx;

    cln = ngx_http_cleanup_add(r, sizeof(ngx_omnibus_admin_replay_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = cln->data;
    ngx_memzero(ctx, sizeof(ngx_omnibus_admin_replay_t));
    ctx->r = r;

    cln->handler = ngx_omnibus_admin_kafka_cleanup;

    rc = ngx_omnibus_kafka_replay(zone, ngx_omnibus_admin_kafka_replayed, ctx,
                                  &ctx->result, &ctx->replay);

    switch (rc) {

    case NGX_OK:
        return ngx_omnibus_admin_kafka_reply(r, &ctx->result);

    case NGX_AGAIN:
        r->main->count++;
        return NGX_DONE;

    case NGX_DECLINED:
        return ngx_omnibus_reply_error(r, NGX_HTTP_NOT_FOUND, "no_fallback",
                                       "no kafka route of this zone has a "
                                       "fallback file", 0);

    case NGX_BUSY:
        return ngx_omnibus_reply_error(r, NGX_HTTP_CONFLICT,
                                       "replay_in_progress",
                                       "a replay of the fallback file is "
                                       "under way", 1);

    default:
        return ngx_omnibus_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "fallback_unreadable",
                                       "the fallback file cannot be read; "
                                       "see the error log", 5);
    }
}

#endif
