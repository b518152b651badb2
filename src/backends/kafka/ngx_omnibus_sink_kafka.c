
/*
 * The Kafka sink.  Each worker has one producer per kafka:// route; an
 * attempt is one produce, and it counts as delivered only when the
 * record's delivery report says the cluster acknowledged it (acks=all by
 * default).  A report finds its attempt through a per-worker table of
 * waits, by index and generation: an attempt that was abandoned (timed
 * out, canceled, its producer recreated) leaves nothing for a late
 * report to touch.
 *
 * While the breaker is open, or when the retries gave up, records go to
 * the route's fallback file, if it has one; a replay sends them again
 * and keeps in the file only what was not acknowledged.
 */


#include <ngx_omnibus_kafka.h>
#include <ngx_omnibus_kafka_fallback.h>
#include <ngx_omnibus_sink_kafka.h>
#include <yajl/yajl_tree.h>


#define NGX_OMNIBUS_KAFKA_KEY_TOPIC   0
#define NGX_OMNIBUS_KAFKA_KEY_ID      1
#define NGX_OMNIBUS_KAFKA_KEY_IDEM    2

#define NGX_OMNIBUS_KAFKA_GRACE       1000  /* ms past message.timeout */
#define NGX_OMNIBUS_KAFKA_EXIT_FLUSH  1000  /* ms, on the way out */
#define NGX_OMNIBUS_KAFKA_REPLAY_MAX  50000 /* records a replay sends */
#define NGX_OMNIBUS_KAFKA_RESTART     1000  /* ms between producer starts */



typedef struct ngx_omnibus_kafka_replay_s  ngx_omnibus_kafka_replay_t;


/* a route's producer */
typedef struct {
    ngx_str_t                      topic;        /* template */
    ngx_omnibus_kafka_settings_t   settings;
    ngx_uint_t                     key;
    ngx_uint_t                     acks_all;
    ngx_uint_t                     idempotence;  /* 1 default, 2 asked */
    ngx_uint_t                     defaults;     /* being set */
    ngx_omnibus_kafka_fallback_t  *fallback;
    ngx_omnibus_route_t           *route;
    ngx_omnibus_kafka_t            client;       /* the worker's */
    ngx_msec_t                     started;      /* last tried */
    ngx_queue_t                    waits;        /* of this producer */
} ngx_omnibus_kafka_conf_t;


/* a produced record waiting for its delivery report */
typedef struct {
    ngx_queue_t                    queue;        /* producer's, or free */
    uint32_t                       index;
    uint32_t                       gen;
    ngx_omnibus_kafka_conf_t      *kc;
    ngx_omnibus_job_t             *job;          /* an attempt, or */
    ngx_omnibus_kafka_replay_t    *replay;       /* a replayed line */
    ngx_str_t                      line;         /* replayed */
    void                          *taken;        /* from this file */
    ngx_event_t                    timer;        /* the attempt's bound */
} ngx_omnibus_kafka_wait_t;


/* a fallback file taken for a replay */
typedef struct {
    ngx_omnibus_kafka_fallback_t  *fallback;
    ngx_array_t                    kept;         /* ngx_str_t lines */
} ngx_omnibus_kafka_taken_t;


struct ngx_omnibus_kafka_replay_s {
    ngx_pool_t                    *pool;
    ngx_log_t                     *log;          /* the cycle's */
    ngx_array_t                    taken;        /* of taken_t */
    ngx_uint_t                     waiting;
    ngx_omnibus_kafka_replayed_t   result;
    ngx_omnibus_kafka_replay_pt    done;         /* NULL: nobody waits */
    void                          *data;
};


static char *ngx_omnibus_kafka_parse(ngx_conf_t *cf,
    ngx_omnibus_route_t *route, ngx_str_t *url);
static ngx_int_t ngx_omnibus_kafka_param(ngx_conf_t *cf,
    ngx_omnibus_route_t *route, ngx_str_t *value);
static ngx_int_t ngx_omnibus_kafka_init(ngx_omnibus_route_t *route,
    ngx_cycle_t *cycle);
static void ngx_omnibus_kafka_send(ngx_omnibus_job_t *job);
static void ngx_omnibus_kafka_cancel(ngx_omnibus_job_t *job);
static ngx_int_t ngx_omnibus_kafka_divert(ngx_omnibus_job_t *job);
static void ngx_omnibus_kafka_exit(ngx_omnibus_route_t *route);
static ngx_int_t ngx_omnibus_kafka_produce(ngx_omnibus_kafka_conf_t *kc,
    ngx_omnibus_kafka_wait_t *w, u_char *topic, ngx_str_t *key,
    ngx_str_t *value, u_char *id, ngx_str_t *bus_topic,
    ngx_uint_t priority);
static size_t ngx_omnibus_kafka_topic(ngx_omnibus_kafka_conf_t *kc,
    u_char *dst, u_char *topic, size_t len);
static void ngx_omnibus_kafka_key(ngx_omnibus_kafka_conf_t *kc,
    ngx_omnibus_msg_t *msg, ngx_str_t *key);
static ngx_int_t ngx_omnibus_kafka_producer(ngx_omnibus_kafka_conf_t *kc);
static void ngx_omnibus_kafka_serve(ngx_omnibus_kafka_t *k);
static void ngx_omnibus_kafka_recreate(ngx_omnibus_kafka_t *k);
static void ngx_omnibus_kafka_report(rd_kafka_t *rk,
    const rd_kafka_message_t *m, void *opaque);
static void ngx_omnibus_kafka_expired(ngx_event_t *ev);
static void ngx_omnibus_kafka_wait_end(ngx_omnibus_kafka_wait_t *w,
    rd_kafka_resp_err_t err);
static ngx_omnibus_kafka_wait_t *ngx_omnibus_kafka_wait_get(
    ngx_omnibus_kafka_conf_t *kc);
static void ngx_omnibus_kafka_wait_free(ngx_omnibus_kafka_wait_t *w);
static ngx_omnibus_result_e ngx_omnibus_kafka_result(rd_kafka_resp_err_t err);
static void ngx_omnibus_kafka_replay_keep(ngx_omnibus_kafka_replay_t *rp,
    ngx_omnibus_kafka_taken_t *t, ngx_str_t *line);
static void ngx_omnibus_kafka_replay_line(ngx_omnibus_kafka_replay_t *rp,
    ngx_omnibus_zone_t *zone, ngx_omnibus_kafka_taken_t *t, ngx_str_t *line);
static void ngx_omnibus_kafka_replayed(ngx_omnibus_kafka_replay_t *rp,
    ngx_omnibus_kafka_wait_t *w, ngx_uint_t acked);
static void ngx_omnibus_kafka_replay_end(ngx_omnibus_kafka_replay_t *rp);


ngx_omnibus_sink_t  ngx_omnibus_sink_kafka = {
    ngx_string("kafka"),
    ngx_omnibus_kafka_parse,
    ngx_omnibus_kafka_param,
    "acks=all|1|0, linger=TIME, batch=SIZE, "
    "compression=none|gzip|snappy|lz4|zstd, idempotence=on|off, "
    "key=topic|id|idempotency_key or fallback=PATH",
    ngx_omnibus_kafka_init,
    ngx_omnibus_kafka_send,
    ngx_omnibus_kafka_cancel,
    ngx_omnibus_kafka_divert,
    ngx_omnibus_kafka_exit
};


/* the worker's waits: by index for reports, and those free for reuse */
static ngx_array_t   ngx_omnibus_kafka_waits;
static ngx_queue_t   ngx_omnibus_kafka_free = {
    &ngx_omnibus_kafka_free, &ngx_omnibus_kafka_free
};


/* kafka://HOST:PORT[,HOST:PORT...]/TOPIC, TOPIC with {topic} in it */

static char *
ngx_omnibus_kafka_parse(ngx_conf_t *cf, ngx_omnibus_route_t *route,
    ngx_str_t *url)
{
    u_char                    *p, *last, *slash;
    ngx_str_t                  brokers, v;
    ngx_omnibus_kafka_conf_t  *kc;

    kc = ngx_pcalloc(cf->pool, sizeof(ngx_omnibus_kafka_conf_t));
    if (kc == NULL) {
        return NGX_CONF_ERROR;
    }

    p = url->data + sizeof("kafka://") - 1;
    last = url->data + url->len;

    slash = ngx_strlchr(p, last, '/');
    if (slash == NULL || slash == p || slash + 1 == last) {
        goto invalid;
    }

    brokers.data = p;
    brokers.len = slash - p;

    if (ngx_omnibus_kafka_brokers_valid(&brokers) != NGX_OK) {
        goto invalid;
    }

    kc->topic.data = slash + 1;
    kc->topic.len = last - kc->topic.data;

    if (ngx_omnibus_kafka_template_valid(&kc->topic, 0) != NGX_OK) {
        goto invalid;
    }

    if (ngx_omnibus_kafka_settings_init(cf, &kc->settings) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    kc->route = route;
    route->conf = kc;

    /*
     * The seed's producer: acknowledged by every replica, in order.  Many
     * records in flight: librdkafka batches what it holds, and with
     * idempotence a partition waits for a whole round of acknowledgements
     * before the next; 64 per shard drained a backlog at half kcat's rate,
     * 512 at its rate (bench/RESULTS.md, section 7).
     */

    route->concurrency = 512;
    route->breaker.conf.failures = 3;

    if (ngx_omnibus_kafka_set(cf, &kc->settings, "bootstrap.servers",
                              &brokers, url)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    kc->defaults = 1;

    ngx_str_set(&v, "acks=all");
    if (ngx_omnibus_kafka_param(cf, route, &v) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&v, "linger=5ms");
    if (ngx_omnibus_kafka_param(cf, route, &v) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&v, "batch=16384");
    if (ngx_omnibus_kafka_param(cf, route, &v) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&v, "compression=gzip");
    if (ngx_omnibus_kafka_param(cf, route, &v) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&v, "idempotence=on");
    if (ngx_omnibus_kafka_param(cf, route, &v) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    kc->defaults = 0;

    return NGX_CONF_OK;

invalid:

    ngx_omnibus_conf_error(cf, "invalid route URL \"%V\" (expected "
                           "kafka://HOST:PORT[,HOST:PORT...]/TOPIC, TOPIC "
                           "of [A-Za-z0-9._-] and {topic})", url);

    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_omnibus_kafka_param(ngx_conf_t *cf, ngx_omnibus_route_t *route,
    ngx_str_t *value)
{
    char                      *name;
    u_char                     buf[NGX_INT_T_LEN];
    ssize_t                    size;
    ngx_str_t                  v;
    ngx_msec_t                 ms;
    ngx_omnibus_kafka_conf_t  *kc;

    static ngx_str_t           off = ngx_string("false");

    kc = route->conf;

    if (ngx_strncmp(value->data, "fallback=", 9) == 0 && value->len > 9) {
        v.data = value->data + 9;
        v.len = value->len - 9;

        kc->fallback = ngx_omnibus_kafka_fallback_conf(cf, &v);

        if (kc->fallback == NULL) {
            ngx_omnibus_conf_error(cf, "invalid parameter \"%V\": the "
                                   "directory must exist", value);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (ngx_strncmp(value->data, "key=", 4) == 0) {
        v.data = value->data + 4;
        v.len = value->len - 4;

        if (v.len == 5 && ngx_strncmp(v.data, "topic", 5) == 0) {
            kc->key = NGX_OMNIBUS_KAFKA_KEY_TOPIC;

        } else if (v.len == 2 && ngx_strncmp(v.data, "id", 2) == 0) {
            kc->key = NGX_OMNIBUS_KAFKA_KEY_ID;

        } else if (v.len == 15
                   && ngx_strncmp(v.data, "idempotency_key", 15) == 0)
        {
            kc->key = NGX_OMNIBUS_KAFKA_KEY_IDEM;

        } else {
            goto invalid;
        }

        return NGX_OK;
    }

    /* the rest are librdkafka's own properties, checked by it now */

    if (ngx_strncmp(value->data, "acks=", 5) == 0) {
        name = "acks";
        v.data = value->data + 5;
        v.len = value->len - 5;

        if (v.len == 3 && ngx_strncmp(v.data, "all", 3) == 0) {
            ngx_str_set(&v, "-1");
            kc->acks_all = 1;

        } else if (v.len == 1 && (v.data[0] == '0' || v.data[0] == '1')) {
            kc->acks_all = 0;

        } else {
            goto invalid;
        }

        /* idempotence needs every replica's acknowledgement */

        if (!kc->acks_all && kc->idempotence) {
            if (kc->idempotence == 2) {
                ngx_omnibus_conf_error(cf, "invalid parameter \"%V\": "
                                       "idempotence=on needs acks=all",
                                       value);
                return NGX_ERROR;
            }

            kc->idempotence = 0;

            if (ngx_omnibus_kafka_set(cf, &kc->settings,
                                      "enable.idempotence", &off, value)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

    } else if (ngx_strncmp(value->data, "linger=", 7) == 0) {
        name = "linger.ms";
        v.data = value->data + 7;
        v.len = value->len - 7;

        ms = ngx_parse_time(&v, 0);
        if (ms == (ngx_msec_t) NGX_ERROR || ms > 900000) {
            goto invalid;
        }

        v.data = buf;
        v.len = ngx_sprintf(buf, "%M", ms) - buf;

    } else if (ngx_strncmp(value->data, "batch=", 6) == 0) {
        name = "batch.size";
        v.data = value->data + 6;
        v.len = value->len - 6;

        size = ngx_parse_size(&v);
        if (size == NGX_ERROR || size == 0) {
            goto invalid;
        }

        v.data = buf;
        v.len = ngx_sprintf(buf, "%z", size) - buf;

    } else if (ngx_strncmp(value->data, "compression=", 12) == 0) {
        name = "compression.codec";
        v.data = value->data + 12;
        v.len = value->len - 12;

    } else if (ngx_strncmp(value->data, "idempotence=", 12) == 0) {
        name = "enable.idempotence";
        v.data = value->data + 12;
        v.len = value->len - 12;

        if (v.len == 2 && ngx_strncmp(v.data, "on", 2) == 0) {
            if (!kc->acks_all) {
                ngx_omnibus_conf_error(cf, "invalid parameter \"%V\": "
                                       "idempotence=on needs acks=all",
                                       value);
                return NGX_ERROR;
            }

            ngx_str_set(&v, "true");
            kc->idempotence = kc->defaults ? 1 : 2;

        } else if (v.len == 3 && ngx_strncmp(v.data, "off", 3) == 0) {
            ngx_str_set(&v, "false");
            kc->idempotence = 0;

        } else {
            goto invalid;
        }

    } else {
        return NGX_DECLINED;
    }

    if (ngx_omnibus_kafka_set(cf, &kc->settings, name, &v, value)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;

invalid:

    ngx_omnibus_conf_error(cf, "invalid parameter \"%V\" (expected "
                           "acks=all|1|0, linger=TIME, batch=SIZE, "
                           "compression=none|gzip|snappy|lz4|zstd, "
                           "idempotence=on|off, "
                           "key=topic|id|idempotency_key or fallback=PATH)",
                           value);

    return NGX_ERROR;
}


static ngx_int_t
ngx_omnibus_kafka_init(ngx_omnibus_route_t *route, ngx_cycle_t *cycle)
{
    ngx_omnibus_kafka_conf_t  *kc;
    ngx_omnibus_route_sh_t    *rs;

    kc = route->conf;
    rs = ngx_omnibus_route_sh(route);

    if (ngx_omnibus_kafka_waits.elts == NULL
        && ngx_array_init(&ngx_omnibus_kafka_waits, cycle->pool, 64,
                          sizeof(ngx_omnibus_kafka_wait_t *))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_queue_init(&kc->waits);

    kc->client.log = cycle->log;
    kc->client.name = &route->name;
    kc->client.up = &rs->sink_up;
    kc->client.failures = rs->sink_failures;
    kc->client.serve = ngx_omnibus_kafka_serve;
    kc->client.recreate = ngx_omnibus_kafka_recreate;
    kc->client.data = kc;

    if (kc->fallback) {
        kc->fallback->log = cycle->log;
    }

    /*
     * A producer that cannot be made now (it only fails on settings
     * librdkafka checks late) leaves the route failing its attempts,
     * to the breaker and the fallback file, not the worker dead.
     */

    (void) ngx_omnibus_kafka_producer(kc);

    return NGX_OK;
}


static ngx_int_t
ngx_omnibus_kafka_producer(ngx_omnibus_kafka_conf_t *kc)
{
    u_char            buf[NGX_INT_T_LEN + 1];
    char              errstr[256];
    rd_kafka_conf_t  *conf;

    kc->started = ngx_current_msec;

    conf = ngx_omnibus_kafka_conf(&kc->client, &kc->settings);
    if (conf == NULL) {
        return NGX_ERROR;
    }

    /* librdkafka gives up on a record when the attempt does */

    *ngx_sprintf(buf, "%M", kc->route->timeout) = '\0';

    if (rd_kafka_conf_set(conf, "message.timeout.ms", (char *) buf, errstr,
                          sizeof(errstr))
        != RD_KAFKA_CONF_OK)
    {
        ngx_log_error(NGX_LOG_ERR, kc->client.log, 0,
                      "omnibus kafka \"%V\": %s", &kc->route->name, errstr);
        rd_kafka_conf_destroy(conf);
        return NGX_ERROR;
    }

    rd_kafka_conf_set_dr_msg_cb(conf, ngx_omnibus_kafka_report);

    if (ngx_omnibus_kafka_open(&kc->client, RD_KAFKA_PRODUCER, conf)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    *kc->client.up = 1;

    return NGX_OK;
}


static void
ngx_omnibus_kafka_serve(ngx_omnibus_kafka_t *k)
{
    while (k->rk && rd_kafka_poll(k->rk, 0) > 0) { /* void */ }
}


/*
 * A fatal error (the idempotent producer lost its sequence): a new
 * producer, and every record the old one had is tried again.
 */

static void
ngx_omnibus_kafka_recreate(ngx_omnibus_kafka_t *k)
{
    ngx_queue_t                waits;
    ngx_omnibus_kafka_conf_t  *kc;
    ngx_omnibus_kafka_wait_t  *w;

    kc = k->data;

    ngx_log_error(NGX_LOG_WARN, k->log, 0,
                  "omnibus kafka \"%V\": the producer is recreated after a "
                  "fatal error", k->name);

    (void) rd_kafka_purge(k->rk,
                          RD_KAFKA_PURGE_F_QUEUE|RD_KAFKA_PURGE_F_INFLIGHT);
    ngx_omnibus_kafka_close(k);

    (void) ngx_omnibus_kafka_producer(kc);

    ngx_queue_init(&waits);

    if (!ngx_queue_empty(&kc->waits)) {
        ngx_queue_add(&waits, &kc->waits);
        ngx_queue_init(&kc->waits);
    }

    while (!ngx_queue_empty(&waits)) {
        w = ngx_queue_data(ngx_queue_head(&waits), ngx_omnibus_kafka_wait_t,
                           queue);
        ngx_omnibus_kafka_wait_end(w, RD_KAFKA_RESP_ERR__FATAL);
    }
}


static void
ngx_omnibus_kafka_send(ngx_omnibus_job_t *job)
{
    u_char                     topic[NGX_OMNIBUS_KAFKA_TOPIC_MAX + 1];
    u_char                    *payload;
    ngx_str_t                  key, value, bus_topic;
    ngx_omnibus_msg_t         *msg;
    ngx_omnibus_kafka_conf_t  *kc;
    ngx_omnibus_kafka_wait_t  *w;

    kc = job->route->conf;
    msg = job->msg;

    /* a producer that could not start is tried again, once a second */

    if (kc->client.rk == NULL
        && ngx_current_msec - kc->started >= NGX_OMNIBUS_KAFKA_RESTART)
    {
        (void) ngx_omnibus_kafka_producer(kc);
    }

    if (kc->client.rk == NULL) {
        ngx_omnibus_job_done(job, NGX_OMNIBUS_RETRY,
                             (u_char *) "no producer", 11);
        return;
    }

    if (ngx_omnibus_kafka_topic(kc, topic, ngx_omnibus_msg_topic(msg),
                                msg->topic_len)
        == 0)
    {
        ngx_omnibus_job_done(job, NGX_OMNIBUS_PERMANENT,
                             (u_char *) "Kafka topic name too long", 25);
        return;
    }

    w = ngx_omnibus_kafka_wait_get(kc);

    /* librdkafka frees it once it has the record */
    payload = ngx_alloc(ngx_max(msg->len, 1), kc->client.log);

    if (w == NULL || payload == NULL) {
        if (w) {
            ngx_omnibus_kafka_wait_free(w);
        }

        if (payload) {
            ngx_free(payload);
        }

        ngx_omnibus_job_done(job, NGX_OMNIBUS_RETRY,
                             (u_char *) "out of memory", 13);
        return;
    }

    (void) ngx_omnibus_msg_copy_payload(payload, msg);

    value.data = payload;
    value.len = msg->len;
    bus_topic.data = ngx_omnibus_msg_topic(msg);
    bus_topic.len = msg->topic_len;

    ngx_omnibus_kafka_key(kc, msg, &key);

    w->job = job;

    if (ngx_omnibus_kafka_produce(kc, w, topic, &key, &value, msg->id,
                                  &bus_topic, msg->priority)
        != NGX_OK)
    {
        /* the job is done already */
        return;
    }

    job->data = w;

    /* a report comes by message.timeout.ms; this bounds a lost one */

    w->timer.handler = ngx_omnibus_kafka_expired;
    w->timer.data = w;
    w->timer.log = kc->client.log;
    w->timer.cancelable = 0;

    ngx_add_timer(&w->timer, job->route->timeout + NGX_OMNIBUS_KAFKA_GRACE);
}


/* value.data was allocated for librdkafka: it is freed on failure here */

static ngx_int_t
ngx_omnibus_kafka_produce(ngx_omnibus_kafka_conf_t *kc,
    ngx_omnibus_kafka_wait_t *w, u_char *topic, ngx_str_t *key,
    ngx_str_t *value, u_char *id, ngx_str_t *bus_topic, ngx_uint_t priority)
{
    u_char                digit;
    uintptr_t             opaque;
    rd_kafka_headers_t   *headers;
    rd_kafka_resp_err_t   err;

    digit = (u_char) ('0' + ngx_min(priority, 9));
    headers = rd_kafka_headers_new(3);

    if (headers == NULL
        || rd_kafka_header_add(headers, "id", 2, id, NGX_OMNIBUS_ID_LEN)
        || rd_kafka_header_add(headers, "topic", 5, bus_topic->data,
                               bus_topic->len)
        || rd_kafka_header_add(headers, "priority", 8, &digit, 1))
    {
        err = RD_KAFKA_RESP_ERR__NOENT;
        goto failed;
    }

    /* 16 bits of generation: enough to tell a late report from a new one */
    opaque = ((uintptr_t) w->index << 16) | (w->gen & 0xffff);

    err = rd_kafka_producev(kc->client.rk,
                            RD_KAFKA_V_TOPIC((char *) topic),
                            RD_KAFKA_V_VALUE(value->data, value->len),
                            RD_KAFKA_V_KEY(key->data, key->len),
                            RD_KAFKA_V_HEADERS(headers),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                            RD_KAFKA_V_OPAQUE((void *) opaque),
                            RD_KAFKA_V_END);

    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        return NGX_OK;
    }

failed:

    if (headers) {
        rd_kafka_headers_destroy(headers);
    }

    ngx_free(value->data);

    ngx_omnibus_kafka_wait_end(w, err);

    return NGX_ERROR;
}


/* the bus topic in the template, ':' as '_'; 0 when too long */

static size_t
ngx_omnibus_kafka_topic(ngx_omnibus_kafka_conf_t *kc, u_char *dst,
    u_char *topic, size_t len)
{
    return ngx_omnibus_kafka_expand(&kc->topic, dst,
                                    NGX_OMNIBUS_KAFKA_TOPIC_MAX, topic, len,
                                    1);
}


static void
ngx_omnibus_kafka_key(ngx_omnibus_kafka_conf_t *kc, ngx_omnibus_msg_t *msg,
    ngx_str_t *key)
{
    switch (kc->key) {

    case NGX_OMNIBUS_KAFKA_KEY_ID:
        key->data = msg->id;
        key->len = NGX_OMNIBUS_ID_LEN;
        break;

    case NGX_OMNIBUS_KAFKA_KEY_IDEM:
        if (msg->key_len) {
            key->data = ngx_omnibus_msg_key(msg);
            key->len = msg->key_len;
            break;
        }

        /* no key given: the id, which is as unique */
        key->data = msg->id;
        key->len = NGX_OMNIBUS_ID_LEN;
        break;

    default:
        key->data = ngx_omnibus_msg_topic(msg);
        key->len = msg->topic_len;
    }
}


static ngx_omnibus_result_e
ngx_omnibus_kafka_result(rd_kafka_resp_err_t err)
{
    switch (err) {

    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return NGX_OMNIBUS_DELIVERED;

    /* the record itself is refused: trying again changes nothing */
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
        return NGX_OMNIBUS_PERMANENT;

    default:
        return NGX_OMNIBUS_RETRY;
    }
}


static void
ngx_omnibus_kafka_report(rd_kafka_t *rk, const rd_kafka_message_t *m,
    void *opaque)
{
    uint32_t                   index, gen;
    uintptr_t                  id;
    ngx_omnibus_kafka_wait_t  *w, **waits;

    id = (uintptr_t) m->_private;
    index = (uint32_t) (id >> 16);
    gen = (uint32_t) (id & 0xffff);

    if (index >= ngx_omnibus_kafka_waits.nelts) {
        return;
    }

    waits = ngx_omnibus_kafka_waits.elts;
    w = waits[index];

    if ((w->gen & 0xffff) != gen || (w->job == NULL && w->replay == NULL)) {
        /* its attempt was abandoned */
        return;
    }

    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        *w->kc->client.up = 1;
        w->kc->client.down = 0;
    }

    ngx_omnibus_kafka_wait_end(w, m->err);
}


/* a wait is over: its attempt gets the verdict, or its replay the count */

static void
ngx_omnibus_kafka_wait_end(ngx_omnibus_kafka_wait_t *w,
    rd_kafka_resp_err_t err)
{
    const char         *error;
    ngx_omnibus_job_t  *job;

    job = w->job;

    if (job == NULL) {
        ngx_omnibus_kafka_replayed(w->replay, w, err == 0);
        return;
    }

    job->data = NULL;
    ngx_omnibus_kafka_wait_free(w);

    error = err ? rd_kafka_err2str(err) : "";

    ngx_omnibus_job_done(job, ngx_omnibus_kafka_result(err),
                         (u_char *) error, ngx_strlen(error));
}


static void
ngx_omnibus_kafka_expired(ngx_event_t *ev)
{
    /* no report by message.timeout.ms and a second: it is not coming */

    ngx_omnibus_kafka_wait_end(ev->data, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
}


static void
ngx_omnibus_kafka_cancel(ngx_omnibus_job_t *job)
{
    ngx_omnibus_kafka_wait_t  *w;

    w = job->data;

    if (w) {
        job->data = NULL;
        ngx_omnibus_kafka_wait_free(w);
    }
}


static ngx_omnibus_kafka_wait_t *
ngx_omnibus_kafka_wait_get(ngx_omnibus_kafka_conf_t *kc)
{
    ngx_queue_t                *q;
    ngx_omnibus_kafka_wait_t   *w, **wp;

    if (!ngx_queue_empty(&ngx_omnibus_kafka_free)) {
        q = ngx_queue_head(&ngx_omnibus_kafka_free);
        ngx_queue_remove(q);
        w = ngx_queue_data(q, ngx_omnibus_kafka_wait_t, queue);

    } else {
        if (ngx_omnibus_kafka_waits.nelts >= 0xffffffff) {
            return NULL;
        }

        w = ngx_calloc(sizeof(ngx_omnibus_kafka_wait_t), kc->client.log);
        if (w == NULL) {
            return NULL;
        }

        wp = ngx_array_push(&ngx_omnibus_kafka_waits);
        if (wp == NULL) {
            ngx_free(w);
            return NULL;
        }

        *wp = w;
        w->index = ngx_omnibus_kafka_waits.nelts - 1;
    }

    w->kc = kc;
    ngx_queue_insert_tail(&kc->waits, &w->queue);

    return w;
}


static void
ngx_omnibus_kafka_wait_free(ngx_omnibus_kafka_wait_t *w)
{
    if (w->timer.timer_set) {
        ngx_del_timer(&w->timer);
    }

    ngx_queue_remove(&w->queue);

    /* a report still to come for it finds another generation */
    w->gen++;
    w->job = NULL;
    w->replay = NULL;
    w->kc = NULL;

    ngx_queue_insert_head(&ngx_omnibus_kafka_free, &w->queue);
}


/* one NDJSON line: where it was going, and the payload in base64 */

static ngx_int_t
ngx_omnibus_kafka_divert(ngx_omnibus_job_t *job)
{
    u_char                    *line, *p, *payload;
    size_t                     len, n;
    ngx_int_t                  rc;
    ngx_str_t                  src, dst, key;
    ngx_omnibus_msg_t         *msg;
    ngx_omnibus_route_t       *route;
    ngx_omnibus_kafka_conf_t  *kc;
    u_char                     topic[NGX_OMNIBUS_KAFKA_TOPIC_MAX + 1];

    route = job->route;
    kc = route->conf;
    msg = job->msg;

    if (kc->fallback == NULL) {
        return NGX_DECLINED;
    }

    n = ngx_omnibus_kafka_topic(kc, topic, ngx_omnibus_msg_topic(msg),
                                msg->topic_len);
    if (n == 0) {
        return NGX_DECLINED;
    }

    /* the record's key as the producer would have sent it, in base64 */
    ngx_omnibus_kafka_key(kc, msg, &key);

    len = sizeof("{\"route\":\"\",\"id\":\"\",\"topic\":\"\","
                 "\"kafka_topic\":\"\",\"key\":\"\",\"priority\":\"0\","
                 "\"value\":\"\"}\n")
          + route->name.len
          + ngx_escape_json(NULL, route->name.data, route->name.len)
          + NGX_OMNIBUS_ID_LEN
          + 2 * msg->topic_len + n
          + ngx_base64_encoded_length(key.len)
          + ngx_base64_encoded_length(msg->len);

    line = ngx_alloc(len + msg->len, route->log);
    if (line == NULL) {
        return NGX_ERROR;
    }

    payload = line + len;
    (void) ngx_omnibus_msg_copy_payload(payload, msg);

    p = ngx_cpymem(line, "{\"route\":\"", 10);
    p = (u_char *) ngx_escape_json(p, route->name.data, route->name.len);
    p = ngx_sprintf(p, "\",\"id\":\"%*s\",\"topic\":\"",
                    (size_t) NGX_OMNIBUS_ID_LEN, msg->id);
    p = (u_char *) ngx_escape_json(p, ngx_omnibus_msg_topic(msg),
                                   msg->topic_len);
    p = ngx_sprintf(p, "\",\"kafka_topic\":\"%*s\",\"key\":\"", n, topic);

    dst.data = p;
    ngx_encode_base64(&dst, &key);
    p += dst.len;

    p = ngx_sprintf(p, "\",\"priority\":\"%ui\",\"value\":\"",
                    (ngx_uint_t) ngx_min(msg->priority, 9));

    src.data = payload;
    src.len = msg->len;
    dst.data = p;
    ngx_encode_base64(&dst, &src);
    p += dst.len;

    p = ngx_cpymem(p, "\"}\n", 3);

    rc = ngx_omnibus_kafka_fallback_append(kc->fallback, line, p - line);

    ngx_free(line);

    return rc;
}


static void
ngx_omnibus_kafka_exit(ngx_omnibus_route_t *route)
{
    ngx_omnibus_kafka_conf_t  *kc;

    kc = route->conf;

    /*
     * The attempts were canceled and their messages go back to the
     * queue; what librdkafka still holds is dropped, and the reports of
     * a replay under way keep its records in the file.
     */

    if (kc->client.rk) {
        (void) rd_kafka_purge(kc->client.rk, RD_KAFKA_PURGE_F_QUEUE
                                             |RD_KAFKA_PURGE_F_INFLIGHT);
        (void) rd_kafka_flush(kc->client.rk, NGX_OMNIBUS_KAFKA_EXIT_FLUSH);
        ngx_omnibus_kafka_close(&kc->client);
    }

    if (kc->fallback) {
        ngx_omnibus_kafka_fallback_close(kc->fallback);
    }
}


/*
 * POST <admin>/kafka/fallback/replay: every fallback file of the zone's
 * kafka routes sent again.  NGX_OK: done now, NGX_AGAIN: done() is
 * called when the last report is in, NGX_DECLINED: no route has a
 * fallback file, NGX_BUSY: a replay is under way.
 */

ngx_int_t
ngx_omnibus_kafka_replay(ngx_omnibus_zone_t *zone,
    ngx_omnibus_kafka_replay_pt done, void *data,
    ngx_omnibus_kafka_replayed_t *result, void **handle)
{
    u_char                      *p, *last, *eol;
    ngx_int_t                    rc;
    ngx_str_t                    records, line;
    ngx_uint_t                   i, j, any, busy;
    ngx_pool_t                  *pool;
    ngx_omnibus_route_t        **routes;
    ngx_omnibus_kafka_conf_t    *kc;
    ngx_omnibus_kafka_taken_t   *t;
    ngx_omnibus_kafka_replay_t  *rp;

    /*
     * Not the request's log nor pool: the request may be gone before the
     * last report.  One taken file per route at most, so that the array
     * never moves under the waits that point into it.
     */

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    rp = ngx_pcalloc(pool, sizeof(ngx_omnibus_kafka_replay_t));
    if (rp == NULL
        || ngx_array_init(&rp->taken, pool, zone->routes.nelts,
                          sizeof(ngx_omnibus_kafka_taken_t))
           != NGX_OK)
    {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    rp->pool = pool;
    rp->log = ngx_cycle->log;
    rp->waiting = 1;            /* until every line is on its way */

    any = 0;
    busy = 0;
    routes = zone->routes.elts;

    for (i = 0; i < zone->routes.nelts; i++) {
        if (routes[i]->sink != &ngx_omnibus_sink_kafka) {
            continue;
        }

        kc = routes[i]->conf;

        if (kc->fallback == NULL) {
            continue;
        }

        any = 1;

        /* routes sharing a file: it is taken once */

        t = rp->taken.elts;

        for (j = 0; j < rp->taken.nelts; j++) {
            if (t[j].fallback->path.len == kc->fallback->path.len
                && ngx_strcmp(t[j].fallback->path.data,
                              kc->fallback->path.data) == 0)
            {
                break;
            }
        }

        if (j < rp->taken.nelts) {
            continue;
        }

        rc = ngx_omnibus_kafka_fallback_take(kc->fallback, pool, &records);

        if (rc == NGX_BUSY) {
            busy = 1;
        }

        if (rc != NGX_OK) {
            continue;
        }

        t = ngx_array_push(&rp->taken);
        if (t == NULL
            || ngx_array_init(&t->kept, pool, 16, sizeof(ngx_str_t))
               != NGX_OK)
        {
            ngx_omnibus_kafka_fallback_close(kc->fallback);
            continue;
        }

        t->fallback = kc->fallback;

        p = records.data;
        last = records.data + records.len;

        while (p < last) {
            eol = ngx_strlchr(p, last, '\n');
            if (eol == NULL) {
                eol = last;
            }

            line.data = p;
            line.len = eol - p;
            p = eol + 1;

            if (line.len == 0) {
                continue;
            }

            /* librdkafka queues at most 100,000: the rest another time */

            if (rp->result.sent >= NGX_OMNIBUS_KAFKA_REPLAY_MAX) {
                ngx_omnibus_kafka_replay_keep(rp, t, &line);
                continue;
            }

            ngx_omnibus_kafka_replay_line(rp, zone, t, &line);
        }
    }

    if (!any) {
        ngx_destroy_pool(pool);
        return NGX_DECLINED;
    }

    if (rp->taken.nelts == 0) {
        ngx_destroy_pool(pool);
        ngx_memzero(result, sizeof(ngx_omnibus_kafka_replayed_t));
        return busy ? NGX_BUSY : NGX_OK;
    }

    if (--rp->waiting == 0) {
        *result = rp->result;
        ngx_omnibus_kafka_replay_end(rp);
        return NGX_OK;
    }

    rp->done = done;
    rp->data = data;
    *handle = rp;

    return NGX_AGAIN;
}


/* whoever waited for the replay is gone: it goes on, unheard */

void
ngx_omnibus_kafka_replay_detach(void *handle)
{
    ngx_omnibus_kafka_replay_t  *rp;

    rp = handle;
    rp->done = NULL;
}


static void
ngx_omnibus_kafka_replay_keep(ngx_omnibus_kafka_replay_t *rp,
    ngx_omnibus_kafka_taken_t *t, ngx_str_t *line)
{
    ngx_str_t  *kept;

    rp->result.kept++;

    kept = ngx_array_push(&t->kept);
    if (kept == NULL) {
        ngx_log_error(NGX_LOG_ALERT, rp->log, 0,
                      "omnibus kafka fallback: a record of \"%s\" is lost: "
                      "out of memory", t->fallback->path.data);
        return;
    }

    *kept = *line;
}


static void
ngx_omnibus_kafka_replay_line(ngx_omnibus_kafka_replay_t *rp,
    ngx_omnibus_zone_t *zone, ngx_omnibus_kafka_taken_t *t, ngx_str_t *line)
{
    u_char                     *copy, *payload;
    ngx_str_t                   s[7], value, key;
    ngx_uint_t                  i;
    yajl_val                    root, v;
    const char                 *path[2];
    ngx_omnibus_route_t       **routes;
    ngx_omnibus_kafka_conf_t   *kc;
    ngx_omnibus_kafka_wait_t   *w;

    static const char          *fields[] = {
        "route", "id", "topic", "kafka_topic", "key", "priority", "value"
    };

    root = NULL;

    copy = ngx_pnalloc(rp->pool, line->len + 1);
    if (copy == NULL) {
        goto keep;
    }

    (void) ngx_cpystrn(copy, line->data, line->len + 1);

    root = yajl_tree_parse((char *) copy, NULL, 0);
    if (root == NULL) {
        goto keep;
    }

    path[1] = NULL;

    for (i = 0; i < 7; i++) {
        path[0] = fields[i];

        v = yajl_tree_get(root, path, yajl_t_string);
        if (v == NULL) {
            goto keep;
        }

        s[i].data = (u_char *) YAJL_GET_STRING(v);
        s[i].len = ngx_strlen(s[i].data);
    }

    if (s[1].len != NGX_OMNIBUS_ID_LEN
        || s[3].len == 0 || s[3].len > NGX_OMNIBUS_KAFKA_TOPIC_MAX)
    {
        goto keep;
    }

    /* the route by name, if this configuration still has it */

    kc = NULL;
    routes = zone->routes.elts;

    for (i = 0; i < zone->routes.nelts; i++) {
        if (routes[i]->sink == &ngx_omnibus_sink_kafka
            && routes[i]->name.len == s[0].len
            && ngx_strncmp(routes[i]->name.data, s[0].data, s[0].len) == 0)
        {
            kc = routes[i]->conf;
            break;
        }
    }

    if (kc == NULL || kc->client.rk == NULL) {
        goto keep;
    }

    /* the key after the value: one buffer, freed by librdkafka */

    payload = ngx_alloc(ngx_base64_decoded_length(s[6].len)
                        + ngx_base64_decoded_length(s[4].len) + 1, rp->log);
    if (payload == NULL) {
        goto keep;
    }

    value.data = payload;

    if (ngx_decode_base64(&value, &s[6]) != NGX_OK) {
        ngx_free(payload);
        goto keep;
    }

    key.data = payload + value.len;

    if (ngx_decode_base64(&key, &s[4]) != NGX_OK) {
        ngx_free(payload);
        goto keep;
    }

    w = ngx_omnibus_kafka_wait_get(kc);
    if (w == NULL) {
        ngx_free(payload);
        goto keep;
    }

    w->replay = rp;
    w->line = *line;
    w->taken = t;

    rp->waiting++;
    rp->result.sent++;

    (void) ngx_omnibus_kafka_produce(kc, w, s[3].data, &key, &value,
                                     s[1].data, &s[2],
                                     s[5].len == 1 && s[5].data[0] >= '0'
                                     && s[5].data[0] <= '9'
                                     ? s[5].data[0] - '0' : 0);

    yajl_tree_free(root);

    return;

keep:

    if (root) {
        yajl_tree_free(root);
    }

    ngx_log_error(NGX_LOG_WARN, rp->log, 0,
                  "omnibus kafka fallback: a record of \"%s\" is kept: it "
                  "cannot be replayed now", t->fallback->path.data);

    ngx_omnibus_kafka_replay_keep(rp, t, line);
}


static void
ngx_omnibus_kafka_replayed(ngx_omnibus_kafka_replay_t *rp,
    ngx_omnibus_kafka_wait_t *w, ngx_uint_t acked)
{
    ngx_omnibus_route_sh_t  *rs;

    if (acked) {
        rp->result.acked++;
        rs = ngx_omnibus_route_sh(w->kc->route);
        (void) ngx_atomic_fetch_add(&rs->replayed, 1);

    } else {
        ngx_omnibus_kafka_replay_keep(rp, w->taken, &w->line);
    }

    ngx_omnibus_kafka_wait_free(w);

    if (--rp->waiting == 0) {
        ngx_omnibus_kafka_replay_end(rp);
    }
}


/* what was not acknowledged goes back to the file, then the rest goes */

static void
ngx_omnibus_kafka_replay_end(ngx_omnibus_kafka_replay_t *rp)
{
    void                          *data;
    u_char                        *buf;
    ngx_str_t                     *kept;
    ngx_uint_t                     i, j;
    ngx_omnibus_kafka_taken_t     *t;
    ngx_omnibus_kafka_replay_pt    done;
    ngx_omnibus_kafka_replayed_t   result;

    t = rp->taken.elts;

    for (i = 0; i < rp->taken.nelts; i++) {
        kept = t[i].kept.elts;

        for (j = 0; j < t[i].kept.nelts; j++) {
            buf = ngx_pnalloc(rp->pool, kept[j].len + 1);

            if (buf == NULL) {
                break;
            }

            ngx_memcpy(buf, kept[j].data, kept[j].len);
            buf[kept[j].len] = '\n';

            if (ngx_omnibus_kafka_fallback_append(t[i].fallback, buf,
                                                  kept[j].len + 1)
                != NGX_OK)
            {
                break;
            }
        }

        /* what went back is on disk before the taken file goes */

        if (j < t[i].kept.nelts
            || ngx_omnibus_kafka_fallback_flush(t[i].fallback) != NGX_OK)
        {
            /* the taken file stays whole for the next replay */
            ngx_omnibus_kafka_fallback_close(t[i].fallback);
            continue;
        }

        ngx_omnibus_kafka_fallback_taken(t[i].fallback);
    }

    /* the pool goes first: done() may end the request and its log */

    result = rp->result;
    done = rp->done;
    data = rp->data;

    ngx_destroy_pool(rp->pool);

    if (done) {
        done(data, &result);
    }
}
