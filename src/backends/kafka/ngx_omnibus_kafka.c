
/*
 * librdkafka on the event loop.  The library runs its own threads for
 * the brokers; everything it reports (delivery reports, errors, logs,
 * consumed records) waits in one queue until we serve it.  The queue
 * writes a byte to a pipe when it stops being empty: NGINX watches the
 * read end, and we serve until nothing is left, because the byte comes
 * only on that transition.  A slow timer serves it too, so that a missed
 * wake-up delays at most a second and never stalls.
 */


#include <ngx_omnibus_kafka.h>


#define NGX_OMNIBUS_KAFKA_TICK  1000


static void ngx_omnibus_kafka_readable(ngx_event_t *rev);
static void ngx_omnibus_kafka_tick(ngx_event_t *ev);
static void ngx_omnibus_kafka_fatal(ngx_event_t *ev);
static void ngx_omnibus_kafka_error(rd_kafka_t *rk, int err,
    const char *reason, void *opaque);
static void ngx_omnibus_kafka_log(const rd_kafka_t *rk, int level,
    const char *fac, const char *buf);


const char  *ngx_omnibus_kafka_reasons[] = {
    "transport",
    "all_brokers_down",
    "authentication",
    "fatal"
};


static void
ngx_omnibus_kafka_check_cleanup(void *data)
{
    rd_kafka_conf_destroy(data);
}


ngx_int_t
ngx_omnibus_kafka_settings_init(ngx_conf_t *cf,
    ngx_omnibus_kafka_settings_t *s)
{
    ngx_pool_cleanup_t  *cln;

    if (ngx_array_init(&s->values, cf->pool, 12, sizeof(ngx_keyval_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    /* a conf object only: no handle, no thread in the master */

    s->check = rd_kafka_conf_new();
    if (s->check == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_omnibus_kafka_check_cleanup;
    cln->data = s->check;

    return NGX_OK;
}


/*
 * A librdkafka property, checked by librdkafka now so that nginx -t
 * tells, and kept NUL-terminated for the workers; param names the
 * directive's parameter in the error.
 */

ngx_int_t
ngx_omnibus_kafka_set(ngx_conf_t *cf, ngx_omnibus_kafka_settings_t *s,
    char *name, ngx_str_t *value, ngx_str_t *param)
{
    char           errstr[256];
    u_char        *v;
    ngx_uint_t     i;
    ngx_keyval_t  *kv;

    v = ngx_pnalloc(cf->pool, value->len + 1);
    if (v == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_cpystrn(v, value->data, value->len + 1);

    if (rd_kafka_conf_set(s->check, name, (char *) v, errstr, sizeof(errstr))
        != RD_KAFKA_CONF_OK)
    {
        ngx_omnibus_conf_error(cf, "invalid parameter \"%V\": %s", param,
                               errstr);
        return NGX_ERROR;
    }

    kv = s->values.elts;

    for (i = 0; i < s->values.nelts; i++) {
        if (ngx_strcmp(kv[i].key.data, name) == 0) {
            break;
        }
    }

    if (i == s->values.nelts) {
        kv = ngx_array_push(&s->values);
        if (kv == NULL) {
            return NGX_ERROR;
        }

        kv->key.data = (u_char *) name;
        kv->key.len = ngx_strlen(name);

    } else {
        kv = &kv[i];
    }

    kv->value.data = v;
    kv->value.len = value->len;

    return NGX_OK;
}


/* HOST:PORT[,HOST:PORT...]: resolved by librdkafka's own threads */

ngx_int_t
ngx_omnibus_kafka_brokers_valid(ngx_str_t *brokers)
{
    u_char  *p, *last;

    if (brokers->len == 0) {
        return NGX_ERROR;
    }

    last = brokers->data + brokers->len;

    for (p = brokers->data; p < last; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'
              || *p == ':' || *p == ',' || *p == '[' || *p == ']'))
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * A topic template: {topic} where the other side's topic goes, the rest
 * characters of Kafka's topic names (bus = 0) or of the bus's (bus = 1).
 */

ngx_int_t
ngx_omnibus_kafka_template_valid(ngx_str_t *tpl, ngx_uint_t bus)
{
    u_char  *p, *last;

    last = tpl->data + tpl->len;

    for (p = tpl->data; p < last; p++) {

        if (*p == '{') {
            if (last - p < 7 || ngx_strncmp(p, "{topic}", 7) != 0) {
                return NGX_ERROR;
            }

            p += 6;
            continue;
        }

        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_'
              || *p == '-' || (bus && *p == ':')))
        {
            return NGX_ERROR;
        }
    }

    return tpl->len ? NGX_OK : NGX_ERROR;
}


/* NUL-terminated in dst, ':' as '_' if colons; 0 when over max */

size_t
ngx_omnibus_kafka_expand(ngx_str_t *tpl, u_char *dst, size_t max,
    u_char *topic, size_t len, ngx_uint_t colons)
{
    u_char  *p, *last, *start, *end;
    size_t   i;

    start = dst;
    end = dst + max;
    last = tpl->data + tpl->len;

    for (p = tpl->data; p < last; p++) {

        if (*p == '{') {
            if ((size_t) (end - dst) < len) {
                return 0;
            }

            for (i = 0; i < len; i++) {
                *dst++ = (colons && topic[i] == ':') ? '_' : topic[i];
            }

            p += sizeof("{topic}") - 2;
            continue;
        }

        if (dst == end) {
            return 0;
        }

        *dst++ = *p;
    }

    *dst = '\0';

    return dst - start;
}


rd_kafka_conf_t *
ngx_omnibus_kafka_conf(ngx_omnibus_kafka_t *k,
    ngx_omnibus_kafka_settings_t *s)
{
    char              errstr[512];
    ngx_uint_t        i;
    ngx_keyval_t     *kv;
    rd_kafka_conf_t  *conf;

    conf = rd_kafka_conf_new();
    if (conf == NULL) {
        return NULL;
    }

    kv = s->values.elts;

    for (i = 0; i < s->values.nelts; i++) {
        if (rd_kafka_conf_set(conf, (char *) kv[i].key.data,
                              (char *) kv[i].value.data, errstr,
                              sizeof(errstr))
            != RD_KAFKA_CONF_OK)
        {
            ngx_log_error(NGX_LOG_EMERG, k->log, 0,
                          "omnibus kafka \"%V\": %s", k->name, errstr);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }

    /* logs through the queue we serve, not from the library's threads */

    if (rd_kafka_conf_set(conf, "log.queue", "true", errstr, sizeof(errstr))
        != RD_KAFKA_CONF_OK)
    {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }

    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_error_cb(conf, ngx_omnibus_kafka_error);
    rd_kafka_conf_set_log_cb(conf, ngx_omnibus_kafka_log);

    return conf;
}


/* conf is the handle's from here on, or destroyed */

ngx_int_t
ngx_omnibus_kafka_open(ngx_omnibus_kafka_t *k, rd_kafka_type_t type,
    rd_kafka_conf_t *conf)
{
    int          fds[2];
    char         errstr[512];
    rd_kafka_t  *rk;

    rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        ngx_log_error(NGX_LOG_ERR, k->log, 0,
                      "omnibus kafka \"%V\": %s", k->name, errstr);
        rd_kafka_conf_destroy(conf);
        return NGX_ERROR;
    }

    k->rk = rk;

    if (rd_kafka_set_log_queue(rk, NULL) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        goto failed;
    }

    if (type == RD_KAFKA_CONSUMER) {
        (void) rd_kafka_poll_set_consumer(rk);
        k->queue = rd_kafka_queue_get_consumer(rk);

    } else {
        k->queue = rd_kafka_queue_get_main(rk);
    }

    if (k->queue == NULL) {
        goto failed;
    }

    if (pipe2(fds, O_NONBLOCK|O_CLOEXEC) == -1) {
        ngx_log_error(NGX_LOG_ERR, k->log, ngx_errno, "pipe2() failed");
        goto failed;
    }

    k->wake_fd = fds[1];

    k->wake = ngx_omnibus_conn_wrap(fds[0], k->log);
    if (k->wake == NULL) {
        (void) close(fds[0]);
        goto failed;
    }

    k->wake->data = k;
    k->wake->read->handler = ngx_omnibus_kafka_readable;

    if (ngx_handle_read_event(k->wake->read, 0) != NGX_OK) {
        goto failed;
    }

    rd_kafka_queue_io_event_enable(k->queue, k->wake_fd, "1", 1);

    k->timer.handler = ngx_omnibus_kafka_tick;
    k->timer.data = k;
    k->timer.log = k->log;
    k->timer.cancelable = 1;

    k->fatal.handler = ngx_omnibus_kafka_fatal;
    k->fatal.data = k;
    k->fatal.log = k->log;

    ngx_add_timer(&k->timer, NGX_OMNIBUS_KAFKA_TICK);

    /* what arrived before the pipe was watched wrote nothing */
    k->serve(k);

    return NGX_OK;

failed:

    ngx_omnibus_kafka_close(k);

    return NGX_ERROR;
}


/* the caller flushed or purged what it wanted first */

void
ngx_omnibus_kafka_close(ngx_omnibus_kafka_t *k)
{
    if (k->timer.timer_set) {
        ngx_del_timer(&k->timer);
    }

    if (k->fatal.posted) {
        ngx_delete_posted_event(&k->fatal);
    }

    if (k->queue) {
        rd_kafka_queue_io_event_enable(k->queue, -1, NULL, 0);
        rd_kafka_queue_destroy(k->queue);
        k->queue = NULL;
    }

    if (k->wake) {
        ngx_omnibus_conn_unwrap(k->wake, NGX_OMNIBUS_CONN_CLOSE);
        k->wake = NULL;
    }

    if (k->wake_fd > 0) {
        (void) close(k->wake_fd);
        k->wake_fd = 0;
    }

    if (k->rk) {
        /* a consumer left its group already, or could not */
        rd_kafka_destroy_flags(k->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        k->rk = NULL;
    }
}


static void
ngx_omnibus_kafka_readable(ngx_event_t *rev)
{
    u_char                buf[64];
    ngx_connection_t     *c;
    ngx_omnibus_kafka_t  *k;

    c = rev->data;
    k = c->data;

    /* edge-triggered: empty the pipe, then the queue */

    while (read(c->fd, buf, sizeof(buf)) > 0) { /* void */ }

    if (k->rk) {
        k->serve(k);
    }
}


static void
ngx_omnibus_kafka_tick(ngx_event_t *ev)
{
    ngx_omnibus_kafka_t  *k;

    k = ev->data;

    if (k->rk) {
        k->serve(k);
    }

    /* cancelable: it never holds a quitting worker, and serves it */

    if (k->rk) {
        ngx_add_timer(&k->timer, NGX_OMNIBUS_KAFKA_TICK);
    }
}


/* the handle cannot be destroyed from its own callback: later */

static void
ngx_omnibus_kafka_fatal(ngx_event_t *ev)
{
    ngx_omnibus_kafka_t  *k;

    k = ev->data;

    if (k->rk && k->recreate) {
        k->recreate(k);
    }
}


static void
ngx_omnibus_kafka_error(rd_kafka_t *rk, int err, const char *reason,
    void *opaque)
{
    char                  fatal[512];
    ngx_uint_t            level, why;
    ngx_omnibus_kafka_t  *k;

    k = opaque;
    level = NGX_LOG_ERR;

    switch (err) {

    case RD_KAFKA_RESP_ERR__FATAL:
        why = NGX_OMNIBUS_KAFKA_FATAL;
        (void) rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        reason = fatal;

        if (k->recreate && !k->fatal.posted) {
            ngx_post_event(&k->fatal, &ngx_posted_events);
        }

        break;

    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        why = NGX_OMNIBUS_KAFKA_ALL_BROKERS_DOWN;
        *k->up = 0;
        k->down = 1;
        break;

    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__RESOLVE:
        why = NGX_OMNIBUS_KAFKA_TRANSPORT;
        level = NGX_LOG_WARN;
        break;

    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
        why = NGX_OMNIBUS_KAFKA_AUTH;
        break;

    default:
        why = NGX_OMNIBUS_KAFKA_REASONS;
    }

    if (why < NGX_OMNIBUS_KAFKA_REASONS) {
        (void) ngx_atomic_fetch_add(&k->failures[why], 1);
    }

    ngx_log_error(level, k->log, 0, "omnibus kafka \"%V\": %s: %s",
                  k->name, rd_kafka_err2name(err), reason);
}


static void
ngx_omnibus_kafka_log(const rd_kafka_t *rk, int level, const char *fac,
    const char *buf)
{
    ngx_uint_t            l;
    ngx_omnibus_kafka_t  *k;

    k = rd_kafka_opaque(rk);

    /* syslog levels; nothing from the library is an alert of ours */

    l = (level <= 3) ? NGX_LOG_ERR
        : (level == 4) ? NGX_LOG_WARN
        : (level <= 6) ? NGX_LOG_INFO : NGX_LOG_DEBUG;

    ngx_log_error(l, k->log, 0, "omnibus kafka \"%V\": %s: %s",
                  k->name, fac, buf);
}
