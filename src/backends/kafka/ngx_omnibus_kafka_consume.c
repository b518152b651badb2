
/*
 * Kafka into the bus.  Every worker is a member of the consumer group,
 * so the partitions spread over the workers.  A record becomes a message
 * of the topic the template makes, with the priority of its "priority"
 * header and the idempotency key kafka:<topic>:<partition>:<offset>, so
 * that a record read twice (a restart before its offset was committed)
 * is a duplicate, not a second message.
 *
 * Offsets are stored for the automatic commit only once the record is
 * queued.  A shard that refuses (backpressure, a full zone) pauses the
 * partition and rewinds it to the refused record; it resumes once the
 * shard has drained below its low watermark.  Nothing is dropped and
 * nothing spins.
 */


#include <ngx_omnibus_kafka.h>
#include <ngx_omnibus_kafka_consume.h>


#define NGX_OMNIBUS_CONSUME_RESUME    100     /* ms: paused partitions */
#define NGX_OMNIBUS_CONSUME_LAG       1000    /* ms: lag refreshed */
#define NGX_OMNIBUS_CONSUME_MAX_SIZE  (1024 * 1024)

/* "kafka:" ":" partition ":" offset, around the topic of a key */
#define NGX_OMNIBUS_CONSUME_KEY       (sizeof("kafka:::") - 1             \
                                       + NGX_INT32_LEN + NGX_INT64_LEN)


typedef struct {
    ngx_str_t                      topic;        /* NUL-terminated */
    int32_t                        partition;
    int64_t                        offset;       /* to read again */
} ngx_omnibus_kafka_paused_t;


typedef struct {
    ngx_omnibus_zone_t            *zone;
    ngx_str_t                      name;         /* in logs */
    ngx_str_t                      topic;        /* the bus topic template */
    ngx_array_t                    topics;       /* ngx_str_t, NUL-ended */
    ngx_uint_t                     max_poll;
    ngx_omnibus_kafka_settings_t   settings;

    /* the worker's */
    ngx_omnibus_kafka_t            client;
    ngx_array_t                    paused;       /* paused_t */
    ngx_event_t                    resume;
    ngx_event_t                    more;         /* served max_poll: later */
    ngx_msec_t                     lag_at;
} ngx_omnibus_kafka_consumer_t;


static ngx_int_t ngx_omnibus_kafka_consume_param(ngx_conf_t *cf,
    ngx_omnibus_kafka_consumer_t *kc, ngx_str_t *value);
static ngx_int_t ngx_omnibus_kafka_consume_start(
    ngx_omnibus_kafka_consumer_t *kc);
static void ngx_omnibus_kafka_consume_serve(ngx_omnibus_kafka_t *k);
static void ngx_omnibus_kafka_consume_more(ngx_event_t *ev);
static void ngx_omnibus_kafka_consume_record(
    ngx_omnibus_kafka_consumer_t *kc, rd_kafka_message_t *m);
static ngx_int_t ngx_omnibus_kafka_consume_is_paused(
    ngx_omnibus_kafka_consumer_t *kc, const char *topic, int32_t partition);
static void ngx_omnibus_kafka_consume_pause(ngx_omnibus_kafka_consumer_t *kc,
    rd_kafka_message_t *m);
static void ngx_omnibus_kafka_consume_resume(ngx_event_t *ev);
static void ngx_omnibus_kafka_consume_lag(ngx_omnibus_kafka_consumer_t *kc);


/*
 * omnibus_kafka_consume ZONE BROKERS topics=A[,B...] [group=] [topic=]
 * [offset_reset=latest|earliest] [max_poll=] [session_timeout=]
 */

char *
ngx_omnibus_kafka_consume_parse(ngx_conf_t *cf, ngx_omnibus_zone_t *zone,
    ngx_str_t *value, ngx_uint_t n)
{
    ngx_str_t                      *t, v, commit;
    ngx_uint_t                      i;
    ngx_omnibus_kafka_consumer_t   *kc, **kcp;

    static ngx_str_t  defaults[] = {
        ngx_string("group=omnibus"),
        ngx_string("offset_reset=latest"),
        ngx_string("session_timeout=30s"),
        ngx_null_string
    };

    kc = ngx_pcalloc(cf->pool, sizeof(ngx_omnibus_kafka_consumer_t));
    if (kc == NULL) {
        return NGX_CONF_ERROR;
    }

    kc->zone = zone;
    kc->max_poll = 100;
    ngx_str_set(&kc->topic, "kafka.{topic}");

    if (ngx_omnibus_kafka_brokers_valid(&value[0]) != NGX_OK) {
        ngx_omnibus_conf_error(cf, "invalid brokers \"%V\" (expected "
                               "HOST:PORT[,HOST:PORT...])", &value[0]);
        return NGX_CONF_ERROR;
    }

    kc->name.len = sizeof("consume ") - 1 + value[0].len;
    kc->name.data = ngx_pnalloc(cf->pool, kc->name.len);
    if (kc->name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(ngx_cpymem(kc->name.data, "consume ", 8), value[0].data,
               value[0].len);

    if (ngx_omnibus_kafka_settings_init(cf, &kc->settings) != NGX_OK
        || ngx_array_init(&kc->topics, cf->pool, 4, sizeof(ngx_str_t))
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* records are stored for the commit by us, once queued */

    ngx_str_set(&v, "false");
    ngx_str_set(&commit, "5000");

    if (ngx_omnibus_kafka_set(cf, &kc->settings, "enable.auto.offset.store",
                              &v, &value[0])
        != NGX_OK
        || ngx_omnibus_kafka_set(cf, &kc->settings,
                                 "auto.commit.interval.ms", &commit,
                                 &value[0])
           != NGX_OK
        || ngx_omnibus_kafka_set(cf, &kc->settings, "bootstrap.servers",
                                 &value[0], &value[0])
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    for (i = 0; defaults[i].len; i++) {
        if (ngx_omnibus_kafka_consume_param(cf, kc, &defaults[i])
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    for (i = 1; i < n; i++) {
        if (ngx_omnibus_kafka_consume_param(cf, kc, &value[i]) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (kc->topics.nelts == 0) {
        ngx_omnibus_conf_error(cf, "needs topics=NAME[,NAME...]");
        return NGX_CONF_ERROR;
    }

    t = kc->topics.elts;

    /* kafka:<topic>:<partition>:<offset> must fit an idempotency key */

    for (i = 0; i < kc->topics.nelts; i++) {
        if (ngx_omnibus_kafka_template_valid(&t[i], 0) != NGX_OK
            || ngx_strlchr(t[i].data, t[i].data + t[i].len, '{')
            || t[i].len > NGX_OMNIBUS_KEY_MAX - NGX_OMNIBUS_CONSUME_KEY)
        {
            ngx_omnibus_conf_error(cf, "invalid Kafka topic \"%V\" "
                                   "([A-Za-z0-9._-], at most %uz bytes)",
                                   &t[i],
                                   (size_t) (NGX_OMNIBUS_KEY_MAX
                                             - NGX_OMNIBUS_CONSUME_KEY));
            return NGX_CONF_ERROR;
        }
    }

    kcp = ngx_array_push(&zone->inputs);
    if (kcp == NULL) {
        return NGX_CONF_ERROR;
    }

    *kcp = kc;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_omnibus_kafka_consume_param(ngx_conf_t *cf,
    ngx_omnibus_kafka_consumer_t *kc, ngx_str_t *value)
{
    u_char      *p, *last, *comma, buf[NGX_INT_T_LEN];
    char        *name;
    ngx_int_t    num;
    ngx_str_t    v, *t;
    ngx_msec_t   ms;

    last = value->data + value->len;

    if (ngx_strncmp(value->data, "topics=", 7) == 0) {
        p = value->data + 7;

        while (p < last) {
            comma = ngx_strlchr(p, last, ',');
            if (comma == NULL) {
                comma = last;
            }

            if (comma == p) {
                goto invalid;
            }

            t = ngx_array_push(&kc->topics);
            if (t == NULL) {
                return NGX_ERROR;
            }

            t->len = comma - p;
            t->data = ngx_pnalloc(cf->pool, t->len + 1);
            if (t->data == NULL) {
                return NGX_ERROR;
            }

            (void) ngx_cpystrn(t->data, p, t->len + 1);
            p = comma + 1;
        }

        return NGX_OK;
    }

    if (ngx_strncmp(value->data, "topic=", 6) == 0) {
        kc->topic.data = value->data + 6;
        kc->topic.len = value->len - 6;

        if (ngx_omnibus_kafka_template_valid(&kc->topic, 1) != NGX_OK) {
            goto invalid;
        }

        return NGX_OK;
    }

    if (ngx_strncmp(value->data, "max_poll=", 9) == 0) {
        num = ngx_atoi(value->data + 9, value->len - 9);
        if (num == NGX_ERROR || num == 0 || num > 100000) {
            goto invalid;
        }

        kc->max_poll = num;
        return NGX_OK;
    }

    if (ngx_strncmp(value->data, "group=", 6) == 0 && value->len > 6) {
        name = "group.id";
        v.data = value->data + 6;
        v.len = value->len - 6;

    } else if (ngx_strncmp(value->data, "offset_reset=", 13) == 0) {
        name = "auto.offset.reset";
        v.data = value->data + 13;
        v.len = value->len - 13;

        if (!((v.len == 6 && ngx_strncmp(v.data, "latest", 6) == 0)
              || (v.len == 8 && ngx_strncmp(v.data, "earliest", 8) == 0)))
        {
            goto invalid;
        }

    } else if (ngx_strncmp(value->data, "session_timeout=", 16) == 0) {
        name = "session.timeout.ms";
        v.data = value->data + 16;
        v.len = value->len - 16;

        ms = ngx_parse_time(&v, 0);
        if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
            goto invalid;
        }

        v.data = buf;
        v.len = ngx_sprintf(buf, "%M", ms) - buf;

    } else {
        goto invalid;
    }

    return ngx_omnibus_kafka_set(cf, &kc->settings, name, &v, value);

invalid:

    ngx_omnibus_conf_error(cf, "invalid parameter \"%V\" (expected "
                           "topics=NAME[,NAME...], group=NAME, "
                           "topic=TEMPLATE, offset_reset=latest|earliest, "
                           "max_poll=N or session_timeout=TIME)", value);

    return NGX_ERROR;
}


ngx_int_t
ngx_omnibus_kafka_consume_init_process(ngx_omnibus_zone_t *zone,
    ngx_cycle_t *cycle)
{
    ngx_uint_t                      i;
    ngx_omnibus_kafka_consumer_t  **kcs, *kc;

    kcs = zone->inputs.elts;

    for (i = 0; i < zone->inputs.nelts; i++) {
        kc = kcs[i];

        if (ngx_array_init(&kc->paused, cycle->pool, 8,
                           sizeof(ngx_omnibus_kafka_paused_t))
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        kc->client.log = cycle->log;
        kc->client.name = &kc->name;
        kc->client.up = &zone->sh->input_up;
        kc->client.failures = zone->sh->input_failures;
        kc->client.serve = ngx_omnibus_kafka_consume_serve;
        kc->client.data = kc;

        kc->resume.handler = ngx_omnibus_kafka_consume_resume;
        kc->resume.data = kc;
        kc->resume.log = cycle->log;
        kc->resume.cancelable = 1;

        kc->more.handler = ngx_omnibus_kafka_consume_more;
        kc->more.data = kc;
        kc->more.log = cycle->log;

        /* a consumer that cannot start leaves the rest of the bus be */
        (void) ngx_omnibus_kafka_consume_start(kc);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_omnibus_kafka_consume_start(ngx_omnibus_kafka_consumer_t *kc)
{
    ngx_str_t                        *t;
    ngx_uint_t                        i;
    rd_kafka_conf_t                  *conf;
    rd_kafka_resp_err_t               err;
    rd_kafka_topic_partition_list_t  *topics;

    conf = ngx_omnibus_kafka_conf(&kc->client, &kc->settings);
    if (conf == NULL) {
        return NGX_ERROR;
    }

    if (ngx_omnibus_kafka_open(&kc->client, RD_KAFKA_CONSUMER, conf)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    topics = rd_kafka_topic_partition_list_new(kc->topics.nelts);
    if (topics == NULL) {
        return NGX_ERROR;
    }

    t = kc->topics.elts;

    for (i = 0; i < kc->topics.nelts; i++) {
        (void) rd_kafka_topic_partition_list_add(topics, (char *) t[i].data,
                                                 RD_KAFKA_PARTITION_UA);
    }

    err = rd_kafka_subscribe(kc->client.rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);

    if (err) {
        ngx_log_error(NGX_LOG_ERR, kc->client.log, 0,
                      "omnibus kafka \"%V\": subscribe failed: %s",
                      &kc->name, rd_kafka_err2str(err));
        return NGX_ERROR;
    }

    *kc->client.up = 1;

    return NGX_OK;
}


/* at most max_poll records a turn, then the other events get theirs */

static void
ngx_omnibus_kafka_consume_serve(ngx_omnibus_kafka_t *k)
{
    ngx_uint_t                     n;
    rd_kafka_message_t            *m;
    ngx_omnibus_kafka_consumer_t  *kc;

    kc = k->data;

    for (n = 0; n < kc->max_poll && k->rk; n++) {

        m = rd_kafka_consumer_poll(k->rk, 0);
        if (m == NULL) {
            break;
        }

        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                ngx_log_error(NGX_LOG_WARN, k->log, 0,
                              "omnibus kafka \"%V\": %s", &kc->name,
                              rd_kafka_message_errstr(m));
            }

        } else {
            *k->up = 1;
            k->down = 0;
            ngx_omnibus_kafka_consume_record(kc, m);
        }

        rd_kafka_message_destroy(m);
    }

    /* the next loop turn, after the other events of this one */

    if (n == kc->max_poll && !kc->more.posted) {
        ngx_post_event(&kc->more, &ngx_posted_next_events);
    }

    if (ngx_current_msec - kc->lag_at >= NGX_OMNIBUS_CONSUME_LAG) {
        kc->lag_at = ngx_current_msec;
        ngx_omnibus_kafka_consume_lag(kc);
    }
}


static void
ngx_omnibus_kafka_consume_more(ngx_event_t *ev)
{
    ngx_omnibus_kafka_consumer_t  *kc;

    kc = ev->data;

    if (kc->client.rk) {
        ngx_omnibus_kafka_consume_serve(&kc->client);
    }
}


static void
ngx_omnibus_kafka_consume_record(ngx_omnibus_kafka_consumer_t *kc,
    rd_kafka_message_t *m)
{
    u_char                    *p;
    size_t                     len, hlen;
    const char                *name;
    const void                *hval;
    ngx_omnibus_offer_t        offer;
    ngx_omnibus_enqueue_rc_e   rc;
    rd_kafka_headers_t        *headers;
    u_char                     key[NGX_OMNIBUS_KEY_MAX];
    u_char                     topic[NGX_OMNIBUS_TOPIC_MAX + 1];
    u_char                     id[NGX_OMNIBUS_ID_LEN];

    name = rd_kafka_topic_name(m->rkt);

    /* read again after a pause: what was fetched before it is stale */

    if (ngx_omnibus_kafka_consume_is_paused(kc, name, m->partition)) {
        return;
    }

    ngx_memzero(&offer, sizeof(ngx_omnibus_offer_t));

    len = ngx_omnibus_kafka_expand(&kc->topic, topic, NGX_OMNIBUS_TOPIC_MAX,
                                   (u_char *) name, ngx_strlen(name), 0);
    offer.topic.data = topic;
    offer.topic.len = len;

    if (len == 0 || ngx_omnibus_topic_valid(&offer.topic) != NGX_OK
        || m->len == 0 || m->len > NGX_OMNIBUS_CONSUME_MAX_SIZE)
    {
        /* it could never be published: told, and passed over */
        ngx_log_error(NGX_LOG_ERR, kc->client.log, 0,
                      "omnibus kafka \"%V\": record %s:%d:%O skipped: %s",
                      &kc->name, name, (int) m->partition,
                      (off_t) m->offset,
                      m->len == 0 ? "empty" : len == 0 || m->len
                                    <= NGX_OMNIBUS_CONSUME_MAX_SIZE
                                    ? "no valid bus topic" : "too large");
        (void) rd_kafka_offset_store(m->rkt, m->partition, m->offset);
        return;
    }

    p = ngx_snprintf(key, sizeof(key), "kafka:%s:%d:%O", name,
                     (int) m->partition, (off_t) m->offset);

    offer.key.data = key;
    offer.key.len = p - key;
    offer.payload.data = m->payload;
    offer.payload.len = m->len;
    ngx_str_set(&offer.ctype, "application/octet-stream");

    if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR
        && rd_kafka_header_get_last(headers, "priority", &hval, &hlen)
           == RD_KAFKA_RESP_ERR_NO_ERROR
        && hlen == 1 && *(u_char *) hval >= '0' && *(u_char *) hval <= '9')
    {
        offer.priority = *(u_char *) hval - '0';
    }

    offer.shard = ngx_omnibus_ring_shard(kc->zone, &offer.topic);

    ngx_omnibus_dedup_identity(&offer, NGX_OMNIBUS_DEDUP_KEY);

    rc = ngx_omnibus_enqueue(kc->zone, &offer, id, kc->client.log);

    switch (rc) {

    case NGX_OMNIBUS_QUEUED:
        (void) ngx_atomic_fetch_add(&kc->zone->sh->input_consumed, 1);

        /* a stored zone keeps it too, written behind: the offset is ours */

        if (kc->zone->store) {
            (void) kc->zone->store->write(kc->zone, &offer, id, NULL, NULL);
        }

        /* fall through */

    case NGX_OMNIBUS_DUPLICATE:
        (void) rd_kafka_offset_store(m->rkt, m->partition, m->offset);
        break;

    default:
        ngx_omnibus_kafka_consume_pause(kc, m);
    }
}


static ngx_int_t
ngx_omnibus_kafka_consume_is_paused(ngx_omnibus_kafka_consumer_t *kc,
    const char *topic, int32_t partition)
{
    ngx_uint_t                   i;
    ngx_omnibus_kafka_paused_t  *p;

    p = kc->paused.elts;

    for (i = 0; i < kc->paused.nelts; i++) {
        if (p[i].partition == partition
            && ngx_strcmp(p[i].topic.data, topic) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* the shard refuses: stop the partition, and read it again from here */

static void
ngx_omnibus_kafka_consume_pause(ngx_omnibus_kafka_consumer_t *kc,
    rd_kafka_message_t *m)
{
    const char                       *name;
    rd_kafka_error_t                 *error;
    rd_kafka_topic_partition_list_t  *parts;
    ngx_omnibus_kafka_paused_t       *p;

    name = rd_kafka_topic_name(m->rkt);

    p = ngx_array_push(&kc->paused);
    if (p == NULL) {
        return;
    }

    p->topic.len = ngx_strlen(name);
    p->topic.data = ngx_alloc(p->topic.len + 1, kc->client.log);
    if (p->topic.data == NULL) {
        kc->paused.nelts--;
        return;
    }

    (void) ngx_cpystrn(p->topic.data, (u_char *) name, p->topic.len + 1);
    p->partition = m->partition;
    p->offset = m->offset;

    parts = rd_kafka_topic_partition_list_new(1);
    if (parts == NULL) {
        return;
    }

    rd_kafka_topic_partition_list_add(parts, name, m->partition)->offset =
                                                                   m->offset;

    (void) rd_kafka_pause_partitions(kc->client.rk, parts);

    error = rd_kafka_seek_partitions(kc->client.rk, parts, 0);
    if (error) {
        rd_kafka_error_destroy(error);
    }

    rd_kafka_topic_partition_list_destroy(parts);

    ngx_log_error(NGX_LOG_INFO, kc->client.log, 0,
                  "omnibus kafka \"%V\": %s:%d paused at offset %O: the "
                  "shard refuses more", &kc->name, name, (int) m->partition,
                  (off_t) m->offset);

    if (!kc->resume.timer_set) {
        ngx_add_timer(&kc->resume, NGX_OMNIBUS_CONSUME_RESUME);
    }
}


/* partitions whose shard drained below its low watermark go on */

static void
ngx_omnibus_kafka_consume_resume(ngx_event_t *ev)
{
    u_char                           *t;
    ngx_str_t                         topic;
    ngx_uint_t                        i, shard;
    rd_kafka_topic_partition_list_t  *parts;
    ngx_omnibus_kafka_paused_t       *p;
    ngx_omnibus_kafka_consumer_t     *kc;
    u_char                            buf[NGX_OMNIBUS_TOPIC_MAX + 1];

    kc = ev->data;

    if (kc->client.rk == NULL) {
        return;
    }

    p = kc->paused.elts;

    for (i = 0; i < kc->paused.nelts; /* void */ ) {
        t = p[i].topic.data;

        topic.data = buf;
        topic.len = ngx_omnibus_kafka_expand(&kc->topic, buf,
                                             NGX_OMNIBUS_TOPIC_MAX, t,
                                             p[i].topic.len, 0);
        shard = ngx_omnibus_ring_shard(kc->zone, &topic);

        if (ngx_omnibus_queue_refuses(kc->zone, shard) != NGX_OK) {
            i++;
            continue;
        }

        parts = rd_kafka_topic_partition_list_new(1);
        if (parts == NULL) {
            break;
        }

        (void) rd_kafka_topic_partition_list_add(parts, (char *) t,
                                                 p[i].partition);
        (void) rd_kafka_resume_partitions(kc->client.rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);

        ngx_log_error(NGX_LOG_INFO, kc->client.log, 0,
                      "omnibus kafka \"%V\": %s:%d resumed at offset %O",
                      &kc->name, t, (int) p[i].partition,
                      (off_t) p[i].offset);

        ngx_free(t);
        p[i] = p[--kc->paused.nelts];
    }

    if (kc->paused.nelts && !ngx_exiting) {
        ngx_add_timer(&kc->resume, NGX_OMNIBUS_CONSUME_RESUME);
    }
}


/* high watermark - position, per partition of ours, into the zone */

static void
ngx_omnibus_kafka_consume_lag(ngx_omnibus_kafka_consumer_t *kc)
{
    size_t                            len;
    int64_t                           low, high, lag;
    ngx_uint_t                        i, j, free;
    ngx_omnibus_sh_t                 *sh;
    ngx_omnibus_lag_t                *l;
    rd_kafka_topic_partition_t       *tp;
    rd_kafka_topic_partition_list_t  *parts;

    if (rd_kafka_assignment(kc->client.rk, &parts)
        != RD_KAFKA_RESP_ERR_NO_ERROR)
    {
        return;
    }

    (void) rd_kafka_position(kc->client.rk, parts);

    sh = kc->zone->sh;

    for (i = 0; i < (ngx_uint_t) parts->cnt; i++) {
        tp = &parts->elems[i];

        if (rd_kafka_get_watermark_offsets(kc->client.rk, tp->topic,
                                           tp->partition, &low, &high)
            != RD_KAFKA_RESP_ERR_NO_ERROR
            || high < 0)
        {
            continue;
        }

        lag = (tp->offset >= 0) ? high - tp->offset : high - low;
        len = ngx_min(ngx_strlen(tp->topic), sizeof(l->topic));

        ngx_shmtx_lock(&kc->zone->shpool->mutex);

        free = NGX_OMNIBUS_INPUT_LAGS;

        for (j = 0; j < NGX_OMNIBUS_INPUT_LAGS; j++) {
            l = &sh->input_lag[j];

            if (l->topic_len == 0) {
                free = ngx_min(free, j);
                continue;
            }

            if (l->partition == tp->partition && l->topic_len == len
                && ngx_strncmp(l->topic, tp->topic, len) == 0)
            {
                break;
            }
        }

        if (j == NGX_OMNIBUS_INPUT_LAGS && free < NGX_OMNIBUS_INPUT_LAGS) {
            /* the name before its length: metrics read it unlocked */
            j = free;
            l = &sh->input_lag[j];
            l->partition = tp->partition;
            ngx_memcpy(l->topic, tp->topic, len);
            ngx_memory_barrier();
            l->topic_len = (u_char) len;
        }

        if (j < NGX_OMNIBUS_INPUT_LAGS) {
            sh->input_lag[j].lag = (ngx_atomic_uint_t) ngx_max(lag, 0);
        }

        ngx_shmtx_unlock(&kc->zone->shpool->mutex);
    }

    rd_kafka_topic_partition_list_destroy(parts);
}


/*
 * Leaving the group commits the offsets of what was queued (a restart,
 * with a new zone and a new dedup, reads none of it again) and hands the
 * partitions over at once.  It waits for the coordinator: not when this
 * worker's client last saw every broker down, then the others take over
 * after session_timeout and read from the last commit (auto, every 5 s).
 */

void
ngx_omnibus_kafka_consume_exit_process(ngx_omnibus_zone_t *zone)
{
    ngx_uint_t                      i;
    ngx_omnibus_kafka_paused_t     *p;
    ngx_omnibus_kafka_consumer_t  **kcs, *kc;

    kcs = zone->inputs.elts;

    for (i = 0; i < zone->inputs.nelts; i++) {
        kc = kcs[i];

        if (kc->resume.timer_set) {
            ngx_del_timer(&kc->resume);
        }

        if (kc->more.posted) {
            ngx_delete_posted_event(&kc->more);
        }

        p = kc->paused.elts;

        while (kc->paused.nelts) {
            ngx_free(p[--kc->paused.nelts].topic.data);
        }

        if (kc->client.rk == NULL) {
            continue;
        }

        if (!kc->client.down) {
            (void) rd_kafka_consumer_close(kc->client.rk);
        }

        ngx_omnibus_kafka_close(&kc->client);
    }
}
