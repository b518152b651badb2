
/*
 * The publish handler.  Everything that can be decided from the request
 * line and headers (method, topic, priority, rate limit, declared size,
 * backpressure) is decided before the body is read; the body is then
 * validated and offered to the shard's queue, alone or as NDJSON lines.
 */


#include <ngx_omnibus_http.h>


static ngx_int_t ngx_omnibus_publish_admitted(ngx_http_request_t *r,
    ngx_omnibus_ctx_t *ctx);
static void ngx_omnibus_publish_limited(ngx_omnibus_cluster_wait_t *w);
static void ngx_omnibus_publish_body(ngx_http_request_t *r);
static ngx_int_t ngx_omnibus_publish_one(ngx_http_request_t *r,
    ngx_omnibus_ctx_t *ctx);
static ngx_int_t ngx_omnibus_publish_batch(ngx_http_request_t *r,
    ngx_omnibus_ctx_t *ctx);
static ngx_omnibus_enqueue_rc_e ngx_omnibus_publish_offer(
    ngx_http_request_t *r, ngx_omnibus_ctx_t *ctx, ngx_str_t *payload,
    ngx_str_t *key, u_char *id);
static ngx_omnibus_enqueue_rc_e ngx_omnibus_publish_settle(
    ngx_http_request_t *r, ngx_omnibus_ctx_t *ctx,
    ngx_omnibus_offer_t *offer, u_char *id);
static void ngx_omnibus_publish_release(ngx_omnibus_zone_t *zone,
    ngx_omnibus_msg_t *held, u_char *id, ngx_uint_t ok, u_char *dedup);
static void ngx_omnibus_publish_claimed(ngx_omnibus_cluster_wait_t *w);
static ngx_int_t ngx_omnibus_publish_answer(ngx_http_request_t *r,
    ngx_omnibus_ctx_t *ctx, ngx_omnibus_enqueue_rc_e rc);
static ngx_int_t ngx_omnibus_publish_reply(ngx_http_request_t *r,
    ngx_omnibus_ctx_t *ctx, ngx_omnibus_out_t *out, ngx_uint_t status);
static ngx_int_t ngx_omnibus_publish_cleanup_add(ngx_http_request_t *r,
    ngx_omnibus_ctx_t *ctx);
static void ngx_omnibus_publish_stored(ngx_omnibus_store_wait_t *w);
static void ngx_omnibus_publish_cleanup(void *data);
static ngx_int_t ngx_omnibus_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


const ngx_omnibus_rejection_t  ngx_omnibus_rejections[NGX_OMNIBUS_REJ_MAX] = {
    { NGX_HTTP_BAD_REQUEST, "invalid_json", 0,
      "the body is not valid JSON" },
    { NGX_HTTP_BAD_REQUEST, "invalid_topic", 0,
      "a topic is 1-255 bytes of [A-Za-z0-9_.:-] in dot-separated tokens, "
      "none empty" },
    { NGX_HTTP_BAD_REQUEST, "invalid_priority", 0,
      "priority must be an integer from 0 to 9" },
    { NGX_HTTP_BAD_REQUEST, "empty_message", 0,
      "the message body is empty" },
    { NGX_HTTP_NOT_ALLOWED, "method_not_allowed", 0,
      "this resource does not take that method" },
    { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "message_too_large", 0,
      "the message is larger than omnibus_max_message_size" },
    { NGX_HTTP_TOO_MANY_REQUESTS, "backpressure", 1,
      "the topic's shard is over its high watermark, retry later" },
    { NGX_HTTP_TOO_MANY_REQUESTS, "rate_limited", 1,
      "too many publishes for this client, retry later" },
    { NGX_HTTP_SERVICE_UNAVAILABLE, "zone_full", 1,
      "the bus has no shared memory left" },
    { NGX_HTTP_BAD_REQUEST, "invalid_idempotency_key", 0,
      "an idempotency key is at most 239 bytes without control characters" },
    { NGX_HTTP_BAD_REQUEST, "invalid_content_type", 0,
      "a Content-Type is at most 255 bytes without control characters" },
    { NGX_HTTP_BAD_REQUEST, "invalid_body", 0,
      "the request body is malformed" },
    { NGX_HTTP_SERVICE_UNAVAILABLE, "zone_resizing", 1,
      "the zone is being replaced by a reload, retry" },
    { NGX_HTTP_SERVICE_UNAVAILABLE, "store_unavailable", 1,
      "the message could not be stored, retry" },
    { NGX_HTTP_SERVICE_UNAVAILABLE, "duplicate_pending", 1,
      "a publish with this idempotency key is still being accepted, retry" },
};


static ngx_http_variable_t  ngx_omnibus_vars[] = {

    { ngx_string("omnibus_message_id"), NULL, ngx_omnibus_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("omnibus_topic"), NULL, ngx_omnibus_variable,
      1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("omnibus_shard"), NULL, ngx_omnibus_variable,
      2, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/* counted, and answered as the table says unless told more */

static ngx_int_t
ngx_omnibus_reject_with(ngx_http_request_t *r, ngx_omnibus_zone_t *zone,
    ngx_uint_t reason, const char *message, time_t retry_after)
{
    const ngx_omnibus_rejection_t  *rej;

    rej = &ngx_omnibus_rejections[reason];

    (void) ngx_atomic_fetch_add(&zone->sh->rejected[reason], 1);

    return ngx_omnibus_reply_error(r, rej->status, rej->code,
                                   message ? message : rej->message,
                                   retry_after ? retry_after
                                               : rej->retry_after);
}


#define ngx_omnibus_reject(r, zone, reason)                                 \
    ngx_omnibus_reject_with(r, zone, reason, NULL, 0)


/*
 * The same, before the body was read: discarded, for the connection to
 * stay reusable.  A body that cannot be (a bad chunk) does not change
 * the answer; the connection closes after it.
 */

static ngx_int_t
ngx_omnibus_refuse_with(ngx_http_request_t *r, ngx_omnibus_zone_t *zone,
    ngx_uint_t reason, const char *message, time_t retry_after)
{
    ngx_int_t  rc;

    rc = ngx_http_discard_request_body(r);

    if (rc == NGX_HTTP_BAD_REQUEST) {
        r->keepalive = 0;

    } else if (rc != NGX_OK) {
        return rc;
    }

    if (reason == NGX_OMNIBUS_REJ_METHOD) {
        (void) ngx_atomic_fetch_add(&zone->sh->rejected[reason], 1);
        return ngx_omnibus_reply_not_allowed(r, "POST, PUT");
    }

    return ngx_omnibus_reject_with(r, zone, reason, message, retry_after);
}


#define ngx_omnibus_refuse(r, zone, reason, retry_after)                    \
    ngx_omnibus_refuse_with(r, zone, reason, NULL, retry_after)


/* what an offer the queue did not take answers */

static ngx_uint_t
ngx_omnibus_publish_refusal(ngx_omnibus_enqueue_rc_e rc)
{
    switch (rc) {

    case NGX_OMNIBUS_BACKPRESSURE:
        return NGX_OMNIBUS_REJ_BACKPRESSURE;

    case NGX_OMNIBUS_RETIRED:
        return NGX_OMNIBUS_REJ_RESIZING;

    case NGX_OMNIBUS_NOT_STORED:
        return NGX_OMNIBUS_REJ_STORE;

    case NGX_OMNIBUS_PENDING:
        return NGX_OMNIBUS_REJ_PENDING;

    default:
        return NGX_OMNIBUS_REJ_ZONE_FULL;
    }
}


/* a header value stored and forwarded to webhooks: no control but HT */

static ngx_int_t
ngx_omnibus_publish_printable(ngx_str_t *value)
{
    u_char  *p, *last;

    last = value->data + value->len;

    for (p = value->data; p < last; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/*
 * NGX_OK admitted, NGX_DECLINED limited, NGX_ERROR zone full, NGX_AGAIN
 * asked of the cluster (omnibus_redis): the answer comes to "limited"
 */

static ngx_int_t
ngx_omnibus_publish_limit(ngx_http_request_t *r, ngx_omnibus_ctx_t *ctx,
    ngx_omnibus_limit_conf_t *lc, time_t *retry_after)
{
    ngx_str_t            key;
    ngx_omnibus_zone_t  *zone;

    zone = ctx->zone;

    if (ngx_http_complex_value(r, lc->key, &key) != NGX_OK) {
        return NGX_ERROR;
    }

    /* an empty key is not limited, as in limit_req */
    if (key.len == 0) {
        return NGX_OK;
    }

    if (ngx_omnibus_cluster_has(zone, NGX_OMNIBUS_CLUSTER_LIMIT)
        && ngx_omnibus_publish_cleanup_add(r, ctx) == NGX_OK)
    {
        ctx->cluster.handler = ngx_omnibus_publish_limited;
        ctx->cluster.data = r;

        if (zone->cluster->limit(zone, &lc->rate, &key, &ctx->cluster)
            == NGX_AGAIN)
        {
            return NGX_AGAIN;
        }
    }

    return ngx_omnibus_limit_admit(zone, &lc->rate, &key, retry_after);
}


static void
ngx_omnibus_publish_limited(ngx_omnibus_cluster_wait_t *w)
{
    time_t                    retry_after;
    ngx_int_t                 rc;
    ngx_str_t                 key;
    ngx_connection_t         *c;
    ngx_omnibus_ctx_t        *ctx;
    ngx_http_request_t       *r;
    ngx_omnibus_loc_conf_t   *olcf;

    r = w->data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_omnibus_module);
    olcf = ngx_http_get_module_loc_conf(r, ngx_omnibus_module);

    rc = w->rc;
    retry_after = w->retry_after;

    /* no answer from the cluster: this pod's own count decides */

    if (rc == NGX_ERROR) {
        if (ngx_http_complex_value(r, olcf->limit->key, &key) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            goto done;
        }

        rc = ngx_omnibus_limit_admit(ctx->zone, &olcf->limit->rate, &key,
                                     &retry_after);
    }

    switch (rc) {

    case NGX_OK:
        rc = ngx_omnibus_publish_admitted(r, ctx);
        break;

    case NGX_DECLINED:
        rc = ngx_omnibus_refuse(r, ctx->zone, NGX_OMNIBUS_REJ_RATE_LIMITED,
                                retry_after);
        break;

    default:
        rc = ngx_omnibus_refuse(r, ctx->zone, NGX_OMNIBUS_REJ_ZONE_FULL, 0);
    }

    ngx_http_finalize_request(r, rc);

done:

    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_omnibus_publish_topic(ngx_http_request_t *r,
    ngx_omnibus_loc_conf_t *olcf, ngx_str_t *topic)
{
    u_char  *p, *last;

    if (olcf->topic) {
        return ngx_http_complex_value(r, olcf->topic, topic);
    }

    /* the last segment of the URI */

    last = r->uri.data + r->uri.len;

    for (p = last; p > r->uri.data && p[-1] != '/'; p--) { /* void */ }

    topic->data = p;
    topic->len = last - p;

    return NGX_OK;
}


ngx_int_t
ngx_omnibus_publish_handler(ngx_http_request_t *r)
{
    time_t                   retry_after;
    ngx_int_t                rc;
    ngx_str_t                prio;
    ngx_omnibus_ctx_t       *ctx;
    ngx_omnibus_zone_t      *zone;
    ngx_omnibus_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_omnibus_module);
    zone = olcf->publish;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_omnibus_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->zone = zone;
    ngx_http_set_ctx(r, ctx, ngx_omnibus_module);

    if (!(r->method & (NGX_HTTP_POST|NGX_HTTP_PUT))) {
        return ngx_omnibus_refuse(r, zone, NGX_OMNIBUS_REJ_METHOD, 0);
    }

    if (ngx_omnibus_publish_topic(r, olcf, &ctx->topic) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_omnibus_topic_valid(&ctx->topic) != NGX_OK) {
        return ngx_omnibus_refuse(r, zone, NGX_OMNIBUS_REJ_INVALID_TOPIC, 0);
    }

    if (ngx_http_complex_value(r, olcf->priority, &prio) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (prio.len == 0) {
        ctx->priority = 0;

    } else if (prio.len == 1 && prio.data[0] >= '0' && prio.data[0] <= '9') {
        ctx->priority = prio.data[0] - '0';

    } else {
        return ngx_omnibus_refuse(r, zone, NGX_OMNIBUS_REJ_INVALID_PRIORITY,
                                  0);
    }

    if (ngx_http_complex_value(r, olcf->idempotency_key, &ctx->key)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* room is left for the "#line" suffix of batch keys */
    if (ctx->key.len > NGX_OMNIBUS_KEY_MAX - 16
        || ngx_omnibus_publish_printable(&ctx->key) != NGX_OK)
    {
        return ngx_omnibus_refuse(r, zone, NGX_OMNIBUS_REJ_INVALID_KEY, 0);
    }

    if (r->headers_in.content_type) {
        ctx->ctype = r->headers_in.content_type->value;

        if (ctx->ctype.len > NGX_OMNIBUS_CTYPE_MAX
            || ngx_omnibus_publish_printable(&ctx->ctype) != NGX_OK)
        {
            return ngx_omnibus_refuse(r, zone, NGX_OMNIBUS_REJ_INVALID_CTYPE,
                                      0);
        }

    } else if (olcf->json) {
        ngx_str_set(&ctx->ctype, "application/json");

    } else {
        ngx_str_set(&ctx->ctype, "application/octet-stream");
    }

    ctx->batch = (ctx->ctype.len >= 20
                  && ngx_strncasecmp(ctx->ctype.data,
                                     (u_char *) "application/x-ndjson", 20)
                     == 0);

    if (olcf->limit) {
        rc = ngx_omnibus_publish_limit(r, ctx, olcf->limit, &retry_after);

        if (rc == NGX_AGAIN) {
            r->main->count++;
            return NGX_DONE;
        }

        if (rc == NGX_DECLINED) {
            return ngx_omnibus_refuse(r, zone, NGX_OMNIBUS_REJ_RATE_LIMITED,
                                      retry_after);
        }

        if (rc == NGX_ERROR) {
            return ngx_omnibus_refuse(r, zone, NGX_OMNIBUS_REJ_ZONE_FULL, 0);
        }
    }

    return ngx_omnibus_publish_admitted(r, ctx);
}


/* past the rate limit: the rest of what the headers decide, then the body */

static ngx_int_t
ngx_omnibus_publish_admitted(ngx_http_request_t *r, ngx_omnibus_ctx_t *ctx)
{
    ngx_int_t                rc;
    const char              *why;
    ngx_omnibus_zone_t      *zone;
    ngx_omnibus_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_omnibus_module);
    zone = ctx->zone;

    if (r->headers_in.content_length_n > (off_t) olcf->max_message_size) {
        return ngx_omnibus_refuse(r, zone, NGX_OMNIBUS_REJ_TOO_LARGE, 0);
    }

    ctx->shard = ngx_omnibus_ring_shard(zone, &ctx->topic);

    if (ngx_omnibus_queue_refuses(zone, ctx->shard) != NGX_OK) {
        return ngx_omnibus_refuse(r, zone, NGX_OMNIBUS_REJ_BACKPRESSURE, 0);
    }

    /* a store that cannot take rows now: refused before the body */

    if (zone->store && zone->store->admit(zone, &why) != NGX_OK) {
        return ngx_omnibus_refuse_with(r, zone, NGX_OMNIBUS_REJ_STORE, why,
                                       0);
    }

    ctx->collecting = 1;

    rc = ngx_http_read_client_request_body(r, ngx_omnibus_publish_body);

    /* a body that cannot be read to its end: the connection closes */

    if (rc == NGX_HTTP_BAD_REQUEST) {
        r->keepalive = 0;
        return ngx_omnibus_reject(r, zone, NGX_OMNIBUS_REJ_INVALID_BODY);
    }

    if (rc == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        r->keepalive = 0;
        return ngx_omnibus_reject_with(r, zone, NGX_OMNIBUS_REJ_TOO_LARGE,
                                       "the message is larger than "
                                       "client_max_body_size", 0);
    }

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_omnibus_publish_body(ngx_http_request_t *r)
{
    ngx_int_t           rc;
    ngx_omnibus_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_omnibus_module);
    ctx->collecting = 0;

    if (ctx->too_large) {
        rc = ngx_omnibus_reject(r, ctx->zone, NGX_OMNIBUS_REJ_TOO_LARGE);

    } else if (ctx->len == 0) {
        rc = ngx_omnibus_reject(r, ctx->zone, NGX_OMNIBUS_REJ_EMPTY);

    } else if (ctx->batch) {
        rc = ngx_omnibus_publish_batch(r, ctx);

    } else {
        rc = ngx_omnibus_publish_one(r, ctx);
    }

    if (rc == NGX_DONE) {
        return;                 /* answered once its rows are committed */
    }

    if (ctx->wait.batch) {
        ctx->zone->store->detach(&ctx->wait);
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_omnibus_publish_validate(ngx_http_request_t *r, ngx_str_t *payload,
    ngx_str_t *err)
{
    ngx_omnibus_loc_conf_t  *olcf;

    olcf = ngx_http_get_module_loc_conf(r, ngx_omnibus_module);

    if (!olcf->json) {
        return NGX_OK;
    }

    return ngx_omnibus_json_valid(payload->data, payload->len, err);
}


static void
ngx_omnibus_publish_result(ngx_omnibus_out_t *out, ngx_omnibus_ctx_t *ctx,
    u_char *id, ngx_uint_t duplicate)
{
    ngx_omnibus_out_printf(out, "\"id\":\"%*s\",\"topic\":",
                           (size_t) NGX_OMNIBUS_ID_LEN, id);
    ngx_omnibus_out_json_str(out, ctx->topic.data, ctx->topic.len);
    ngx_omnibus_out_printf(out, ",\"shard\":%ui,\"priority\":%ui%s",
                           ctx->shard, ctx->priority,
                           duplicate ? ",\"duplicate\":true" : "");
}


static ngx_int_t
ngx_omnibus_publish_one(ngx_http_request_t *r, ngx_omnibus_ctx_t *ctx)
{
    u_char                    buf[256];
    ngx_str_t                 payload, err;
    ngx_omnibus_enqueue_rc_e  rc;

    payload.data = ctx->body;
    payload.len = ctx->len;

    err.data = buf;
    err.len = sizeof(buf) - 1;

    switch (ngx_omnibus_publish_validate(r, &payload, &err)) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        buf[err.len] = '\0';
        return ngx_omnibus_reject_with(r, ctx->zone,
                                       NGX_OMNIBUS_REJ_INVALID_JSON,
                                       (char *) buf, 0);

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_omnibus_publish_offer(r, ctx, &payload, &ctx->key, ctx->id);

    if (ctx->claiming) {
        return NGX_DONE;            /* answered once the cluster has */
    }

    return ngx_omnibus_publish_answer(r, ctx, rc);
}


static ngx_int_t
ngx_omnibus_publish_answer(ngx_http_request_t *r, ngx_omnibus_ctx_t *ctx,
    ngx_omnibus_enqueue_rc_e rc)
{
    ngx_omnibus_out_t  out;

    if (rc != NGX_OMNIBUS_QUEUED && rc != NGX_OMNIBUS_DUPLICATE) {
        return ngx_omnibus_reject(r, ctx->zone,
                                  ngx_omnibus_publish_refusal(rc));
    }

    ctx->has_id = 1;

    ngx_omnibus_out_init(&out, r);
    ngx_omnibus_out_printf(&out, "{");
    ngx_omnibus_publish_result(&out, ctx, ctx->id,
                               rc == NGX_OMNIBUS_DUPLICATE);
    ngx_omnibus_out_printf(&out, "}\n");

    return ngx_omnibus_publish_reply(r, ctx, &out,
                                     rc == NGX_OMNIBUS_DUPLICATE
                                     ? NGX_HTTP_OK : NGX_HTTP_ACCEPTED);
}


/* the answer now, or once the store has committed the rows (mode=sync) */

static ngx_int_t
ngx_omnibus_publish_reply(ngx_http_request_t *r, ngx_omnibus_ctx_t *ctx,
    ngx_omnibus_out_t *out, ngx_uint_t status)
{
    if (ctx->wait.rows == 0) {
        return ngx_omnibus_out_send(out, status, "application/json");
    }

    ctx->out = ngx_palloc(r->pool, sizeof(ngx_omnibus_out_t));

    if (ctx->out == NULL
        || ngx_omnibus_publish_cleanup_add(r, ctx) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    *ctx->out = *out;
    ctx->status = status;
    ctx->wait.handler = ngx_omnibus_publish_stored;
    ctx->wait.data = r;

    return NGX_DONE;
}


/* what a request waiting for a backend leaves behind if it goes first */

static ngx_int_t
ngx_omnibus_publish_cleanup_add(ngx_http_request_t *r, ngx_omnibus_ctx_t *ctx)
{
    ngx_pool_cleanup_t  *cln;

    if (ctx->cleanup) {
        return NGX_OK;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_omnibus_publish_cleanup;
    cln->data = ctx;
    ctx->cleanup = 1;

    return NGX_OK;
}


static void
ngx_omnibus_publish_stored(ngx_omnibus_store_wait_t *w)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_omnibus_ctx_t   *ctx;
    ngx_http_request_t  *r;

    r = w->data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_omnibus_module);

    if (w->failed) {
        /* nothing of the request was accepted: no 202 for a lost row */
        (void) ngx_atomic_fetch_add(
                   &ctx->zone->sh->rejected[NGX_OMNIBUS_REJ_STORE],
                   w->failed);

        ctx->has_id = 0;

        if (ctx->claimed) {
            ctx->zone->cluster->unclaim(ctx->zone, ctx->offer.dedup, ctx->id);
        }

        rc = ngx_omnibus_reply_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "store_unavailable",
                                     "the message could not be stored, "
                                     "retry", 1);

    } else {
        if (ctx->claimed && ctx->pending) {
            ctx->zone->cluster->confirm(ctx->zone, ctx->offer.dedup,
                                        ctx->id);
        }

        rc = ngx_omnibus_out_send(ctx->out, ctx->status, "application/json");
    }

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_omnibus_publish_cleanup(void *data)
{
    ngx_omnibus_ctx_t   *ctx = data;
    ngx_omnibus_zone_t  *zone;
    ngx_omnibus_msg_t   *held;

    zone = ctx->zone;

    if (ctx->wait.batch) {
        zone->store->detach(&ctx->wait);
    }

    if (ctx->cluster.cmd) {
        zone->cluster->detach(&ctx->cluster);
    }

    if (!ctx->claiming) {
        return;
    }

    /* nobody was told of the message: it goes, and so does its claim */

    held = ctx->offer.held;

    ngx_omnibus_publish_release(zone, held, ctx->id, 0, ctx->offer.dedup);

    zone->cluster->unclaim(zone, ctx->offer.dedup, ctx->id);
}


/* NDJSON: each line is a message with its own result */

static ngx_int_t
ngx_omnibus_publish_batch(ngx_http_request_t *r, ngx_omnibus_ctx_t *ctx)
{
    u_char                    *p, *last, *kp, buf[256];
    ngx_int_t                  valid;
    ngx_str_t                  payload, err, key;
    ngx_uint_t                 line, n, reason;
    ngx_omnibus_out_t          out;
    ngx_omnibus_enqueue_rc_e   rc;
    u_char                     id[NGX_OMNIBUS_ID_LEN];

    ngx_omnibus_out_init(&out, r);
    ngx_omnibus_out_printf(&out, "{\"results\":[");

    kp = NULL;

    if (ctx->key.len) {
        kp = ngx_pnalloc(r->pool, ctx->key.len + 1 + NGX_INT_T_LEN);
        if (kp == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    p = ctx->body;
    last = ctx->body + ctx->len;
    line = 0;
    n = 0;

    while (ngx_omnibus_ndjson_next(&p, last, &payload) == NGX_OK) {
        line++;

        if (payload.len == 0) {
            continue;
        }

        ngx_omnibus_out_printf(&out, n++ ? ",{" : "{");

        err.data = buf;
        err.len = sizeof(buf);

        valid = ngx_omnibus_publish_validate(r, &payload, &err);

        if (valid == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (valid == NGX_DECLINED) {
            (void) ngx_atomic_fetch_add(
                       &ctx->zone->sh->rejected[NGX_OMNIBUS_REJ_INVALID_JSON],
                       1);
            ngx_omnibus_out_printf(&out, "\"line\":%ui,\"status\":400,"
                                   "\"error\":\"invalid_json\",\"message\":",
                                   line);
            ngx_omnibus_out_json_str(&out, err.data, err.len);
            ngx_omnibus_out_printf(&out, "}");
            continue;
        }

        /* a producer's key names the batch; each line gets its own */

        key.len = 0;

        if (kp) {
            key.data = kp;
            key.len = ngx_sprintf(kp, "%V#%ui", &ctx->key, line) - kp;
        }

        rc = ngx_omnibus_publish_offer(r, ctx, &payload, &key, id);

        if (rc == NGX_OMNIBUS_QUEUED || rc == NGX_OMNIBUS_DUPLICATE) {
            ngx_memcpy(ctx->id, id, NGX_OMNIBUS_ID_LEN);
            ctx->has_id = 1;

            ngx_omnibus_out_printf(&out, "\"line\":%ui,\"status\":%d,",
                                   line, rc == NGX_OMNIBUS_QUEUED ? 202 : 200);
            ngx_omnibus_publish_result(&out, ctx, id,
                                       rc == NGX_OMNIBUS_DUPLICATE);
            ngx_omnibus_out_printf(&out, "}");
            continue;
        }

        reason = ngx_omnibus_publish_refusal(rc);

        (void) ngx_atomic_fetch_add(&ctx->zone->sh->rejected[reason], 1);

        ngx_omnibus_out_printf(&out, "\"line\":%ui,\"status\":%ui,"
                               "\"error\":\"%s\",\"message\":\"%s\"}",
                               line, ngx_omnibus_rejections[reason].status,
                               ngx_omnibus_rejections[reason].code,
                               ngx_omnibus_rejections[reason].message);
    }

    if (n == 0) {
        return ngx_omnibus_reject_with(r, ctx->zone, NGX_OMNIBUS_REJ_EMPTY,
                                       "the batch has no messages", 0);
    }

    ngx_omnibus_out_printf(&out, "]}\n");

    return ngx_omnibus_publish_reply(r, ctx, &out, NGX_HTTP_OK);
}


static ngx_omnibus_enqueue_rc_e
ngx_omnibus_publish_offer(ngx_http_request_t *r, ngx_omnibus_ctx_t *ctx,
    ngx_str_t *payload, ngx_str_t *key, u_char *id)
{
    ngx_uint_t                claim;
    ngx_omnibus_zone_t       *zone;
    ngx_omnibus_offer_t       offer;
    ngx_omnibus_store_t      *store;
    ngx_omnibus_loc_conf_t   *olcf;
    ngx_omnibus_enqueue_rc_e  rc;

    olcf = ngx_http_get_module_loc_conf(r, ngx_omnibus_module);
    zone = ctx->zone;
    store = zone->store;

    ngx_memzero(&offer, sizeof(ngx_omnibus_offer_t));

    offer.topic = ctx->topic;
    offer.key = *key;
    offer.payload = *payload;
    offer.priority = ctx->priority;
    offer.shard = ctx->shard;
    offer.json = olcf->json;

    if (ctx->batch) {
        ngx_str_set(&offer.ctype, "application/json");

    } else {
        offer.ctype = ctx->ctype;
    }

    ngx_omnibus_dedup_identity(&offer, olcf->dedup);

    /*
     * A single message whose identity the cluster claims waits held in
     * its queue for the answer: a duplicate leaves it, unseen.
     */

    claim = (offer.dedup_on && !ctx->batch
             && ngx_omnibus_cluster_has(zone, NGX_OMNIBUS_CLUSTER_DEDUP));

    offer.hold = (store && store->sync) || claim;

    rc = ngx_omnibus_enqueue(zone, &offer, id, r->connection->log);

    /* a ring change may have moved the topic meanwhile */
    ctx->shard = offer.shard;

    if (rc == NGX_OMNIBUS_QUEUED && claim
        && ngx_omnibus_publish_cleanup_add(r, ctx) == NGX_OK)
    {
        ctx->offer = offer;
        ctx->cluster.handler = ngx_omnibus_publish_claimed;
        ctx->cluster.data = r;

        /* provisional until committed: this pod may die before that */
        ctx->pending = (store && store->sync);

        if (zone->cluster->claim(zone, offer.dedup, id,
                                 ctx->pending ? store->timeout + 1000 : 0,
                                 &ctx->cluster)
            == NGX_AGAIN)
        {
            ctx->claiming = 1;
            return rc;
        }
    }

    if (rc == NGX_OMNIBUS_QUEUED) {
        rc = ngx_omnibus_publish_settle(r, ctx, &offer, id);
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "omnibus publish: \"%V\" shard %ui, %uz bytes, "
                   "result %d", &ctx->topic, ctx->shard, payload->len,
                   (int) rc);

    return rc;
}


/*
 * A queued message goes on: its row is written (held until committed,
 * mode=sync), or a message held for a claim only is let go now.
 */

static ngx_omnibus_enqueue_rc_e
ngx_omnibus_publish_settle(ngx_http_request_t *r, ngx_omnibus_ctx_t *ctx,
    ngx_omnibus_offer_t *offer, u_char *id)
{
    ngx_omnibus_zone_t   *zone;
    ngx_omnibus_msg_t    *held;
    ngx_omnibus_store_t  *store;

    zone = ctx->zone;
    store = zone->store;
    held = offer->held;

    /* held for its claim only: it goes on now, its row written behind */

    if (held && !(store && store->sync)) {
        ngx_omnibus_publish_release(zone, held, id, 1,
                                    offer->dedup_on ? offer->dedup : NULL);
        held = NULL;
    }

    if (store == NULL
        || store->write(zone, offer, id, held, held ? &ctx->wait : NULL)
           == NGX_OK
        || held == NULL)
    {
        return NGX_OMNIBUS_QUEUED;
    }

    ngx_omnibus_publish_release(zone, held, id, 0,
                                offer->dedup_on ? offer->dedup : NULL);

    return NGX_OMNIBUS_NOT_STORED;
}


/*
 * A message held for this request is let go (accepted) or taken out of
 * its queue, if it is still the one held; either way its shard may now
 * dispatch what waited behind it.
 */

static void
ngx_omnibus_publish_release(ngx_omnibus_zone_t *zone, ngx_omnibus_msg_t *held,
    u_char *id, ngx_uint_t ok, u_char *dedup)
{
    ngx_uint_t  shard;

    shard = held->shard;

    ngx_shmtx_lock(&zone->shpool->mutex);

    if (held->held && ngx_memcmp(held->id, id, NGX_OMNIBUS_ID_LEN) == 0) {
        ngx_omnibus_queue_release_locked(zone, held, ok, dedup);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ngx_omnibus_notify(zone, shard);
}


static void
ngx_omnibus_publish_claimed(ngx_omnibus_cluster_wait_t *w)
{
    ngx_int_t                  rc;
    ngx_connection_t          *c;
    ngx_omnibus_ctx_t         *ctx;
    ngx_omnibus_msg_t         *held;
    ngx_omnibus_zone_t        *zone;
    ngx_http_request_t        *r;
    ngx_omnibus_enqueue_rc_e   qrc;

    r = w->data;
    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_omnibus_module);
    zone = ctx->zone;
    held = ctx->offer.held;

    ctx->claiming = 0;

    if (w->rc == NGX_DECLINED) {
        /* another pod took it first: answered with its id, as here */

        ngx_shmtx_lock(&zone->shpool->mutex);

        ngx_omnibus_dedup_redirect_locked(zone, ctx->offer.dedup, ctx->id,
                                          w->first);
        zone->sh->deduplicated++;

        ngx_shmtx_unlock(&zone->shpool->mutex);

        ngx_omnibus_publish_release(zone, held, ctx->id, 0, NULL);

        ngx_memcpy(ctx->id, w->first, NGX_OMNIBUS_ID_LEN);
        qrc = NGX_OMNIBUS_DUPLICATE;

    } else if (w->rc == NGX_BUSY) {
        /* another pod's, not yet durable: it may still fail, or die */

        ngx_omnibus_publish_release(zone, held, ctx->id, 0,
                                    ctx->offer.dedup);
        qrc = NGX_OMNIBUS_PENDING;

    } else {
        ctx->claimed = (w->rc == NGX_OK);

        qrc = ngx_omnibus_publish_settle(r, ctx, &ctx->offer, ctx->id);

        if (qrc != NGX_OMNIBUS_QUEUED && ctx->claimed) {
            zone->cluster->unclaim(zone, ctx->offer.dedup, ctx->id);
        }
    }

    rc = ngx_omnibus_publish_answer(r, ctx, qrc);

    if (rc != NGX_DONE) {
        if (ctx->wait.batch) {
            zone->store->detach(&ctx->wait);
        }

        ngx_http_finalize_request(r, rc);
    }

    ngx_http_run_posted_requests(c);
}


ngx_int_t
ngx_omnibus_publish_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_omnibus_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_omnibus_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char                  *p;
    ngx_omnibus_ctx_t       *ctx;
    ngx_omnibus_loc_conf_t  *olcf;

    /* in other locations our context, if any, is a subscriber's */

    olcf = ngx_http_get_module_loc_conf(r, ngx_omnibus_module);
    ctx = ngx_http_get_module_ctx(r, ngx_omnibus_module);

    if (olcf->publish == NULL || ctx == NULL
        || (data == 1 ? ctx->topic.data == NULL : !ctx->has_id))
    {
        v->not_found = 1;
        return NGX_OK;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    switch (data) {

    case 0:
        v->data = ctx->id;
        v->len = NGX_OMNIBUS_ID_LEN;
        break;

    case 1:
        v->data = ctx->topic.data;
        v->len = ctx->topic.len;
        break;

    default:
        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;
        v->len = ngx_sprintf(p, "%ui", ctx->shard) - p;
        break;
    }

    return NGX_OK;
}
