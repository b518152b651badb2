
/*
 * The webhook sink: a nonblocking HTTP/1.1 client on the event loop.
 * One attempt = one POST of the message to the route's URL over a
 * keepalive connection of the route's per-worker pool (or a new one to
 * the next upstream peer), bounded by the route's timeout.  The body is
 * sent straight from the message's chunks in the zone.
 */


#include <ngx_omnibus_conn.h>
#include <ngx_omnibus_sink_http.h>
#include <ngx_http.h>


#define NGX_OMNIBUS_HTTP_HEAD    4096        /* longest response head */
#define NGX_OMNIBUS_HTTP_IDLE    64          /* idle connections kept */
#define NGX_OMNIBUS_HTTP_KEEP    60000       /* for at most this long */
#define NGX_OMNIBUS_HTTP_POOL    1024        /* an attempt's first pool */


/* a route's webhook: where to, and the worker's connections there */
typedef struct {
    ngx_http_upstream_srv_conf_t  *upstream;
    ngx_str_t                      host;         /* Host header */
    ngx_str_t                      uri;
    ngx_uint_t                     next_peer;
    ngx_omnibus_conn_pool_t        idle;
} ngx_omnibus_http_conf_t;


/* one attempt */
typedef struct {
    ngx_omnibus_job_t             *job;
    ngx_pool_t                    *pool;
    ngx_connection_t              *c;
    ngx_chain_t                   *out;
    off_t                          rest;         /* response body left */
    ngx_buf_t                      head;         /* the response head */
    ngx_http_status_t              status;
    ngx_http_request_t             parser;       /* NGINX's parser state */
    unsigned                       reused:1;
    unsigned                       sent:1;
    unsigned                       status_line:1;
    unsigned                       headers:1;
    unsigned                       close:1;
    u_char                         buf[NGX_OMNIBUS_HTTP_HEAD];
} ngx_omnibus_http_t;


static char *ngx_omnibus_http_parse_url(ngx_conf_t *cf,
    ngx_omnibus_route_t *route, ngx_str_t *url);
static ngx_int_t ngx_omnibus_http_init(ngx_omnibus_route_t *route,
    ngx_cycle_t *cycle);
static void ngx_omnibus_http_send(ngx_omnibus_job_t *job);
static void ngx_omnibus_http_cancel(ngx_omnibus_job_t *job);
static void ngx_omnibus_http_exit(ngx_omnibus_route_t *route);
static void ngx_omnibus_http_attempt(ngx_omnibus_job_t *job,
    ngx_uint_t fresh);
static ngx_http_upstream_rr_peer_t *ngx_omnibus_http_peer(
    ngx_omnibus_http_conf_t *hc);
static ngx_int_t ngx_omnibus_http_request(ngx_omnibus_http_t *h);
static void ngx_omnibus_http_write(ngx_event_t *wev);
static void ngx_omnibus_http_read(ngx_event_t *rev);
static ngx_int_t ngx_omnibus_http_parse(ngx_omnibus_http_t *h);
static void ngx_omnibus_http_end(ngx_omnibus_http_t *h,
    ngx_omnibus_result_e rc, const char *error);


ngx_omnibus_sink_t  ngx_omnibus_sink_http = {
    ngx_string("http"),
    ngx_omnibus_http_parse_url,
    NULL,
    NULL,
    ngx_omnibus_http_init,
    ngx_omnibus_http_send,
    ngx_omnibus_http_cancel,
    NULL,
    ngx_omnibus_http_exit
};


/* http://HOST[:PORT][/PATH], HOST an address or an upstream {} name */

static char *
ngx_omnibus_http_parse_url(ngx_conf_t *cf, ngx_omnibus_route_t *route,
    ngx_str_t *url)
{
    ngx_url_t                 u;
    ngx_omnibus_http_conf_t  *hc;

    hc = ngx_pcalloc(cf->pool, sizeof(ngx_omnibus_http_conf_t));
    if (hc == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url.data = url->data + sizeof("http://") - 1;
    u.url.len = url->len - (sizeof("http://") - 1);
    u.default_port = 80;
    u.uri_part = 1;
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        ngx_omnibus_conf_error(cf,
                               "invalid route URL \"%V\": %s", url,
                               u.err ? u.err : "cannot parse");
        return NGX_CONF_ERROR;
    }

    /*
     * An upstream {} block by that name, or the host resolved now.  It
     * parses the URL again and appends to u.addrs, sized for one parse.
     */

    u.addrs = NULL;
    u.naddrs = 0;

    hc->upstream = ngx_http_upstream_add(cf, &u, 0);
    if (hc->upstream == NULL) {
        return NGX_CONF_ERROR;
    }

    hc->host.data = u.url.data;
    hc->host.len = u.uri.len ? (size_t) (u.uri.data - u.url.data)
                             : u.url.len;

    if (u.uri.len) {
        hc->uri = u.uri;

    } else {
        ngx_str_set(&hc->uri, "/");
    }

    route->conf = hc;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_omnibus_http_init(ngx_omnibus_route_t *route, ngx_cycle_t *cycle)
{
    ngx_omnibus_http_conf_t  *hc;

    hc = route->conf;

    ngx_omnibus_conn_pool_init(&hc->idle, NGX_OMNIBUS_HTTP_IDLE,
                               NGX_OMNIBUS_HTTP_KEEP);

    return NGX_OK;
}


static void
ngx_omnibus_http_send(ngx_omnibus_job_t *job)
{
    ngx_omnibus_http_attempt(job, 0);
}


static void
ngx_omnibus_http_attempt(ngx_omnibus_job_t *job, ngx_uint_t fresh)
{
    ngx_pool_t                   *pool;
    ngx_connection_t             *c;
    ngx_omnibus_http_t           *h;
    ngx_omnibus_route_t          *route;
    ngx_omnibus_http_conf_t      *hc;
    ngx_http_upstream_rr_peer_t  *peer;

    route = job->route;
    hc = route->conf;

    pool = ngx_create_pool(NGX_OMNIBUS_HTTP_POOL, route->log);
    if (pool == NULL) {
        ngx_omnibus_job_done(job, NGX_OMNIBUS_RETRY,
                             (u_char *) "out of memory", 13);
        return;
    }

    h = ngx_pcalloc(pool, sizeof(ngx_omnibus_http_t));
    if (h == NULL) {
        ngx_destroy_pool(pool);
        ngx_omnibus_job_done(job, NGX_OMNIBUS_RETRY,
                             (u_char *) "out of memory", 13);
        return;
    }

    h->job = job;
    h->pool = pool;
    h->rest = -1;
    h->head.start = h->buf;
    h->head.pos = h->buf;
    h->head.last = h->buf;
    h->head.end = h->buf + NGX_OMNIBUS_HTTP_HEAD;
    job->data = h;

    if (ngx_omnibus_http_request(h) != NGX_OK) {
        ngx_omnibus_http_end(h, NGX_OMNIBUS_RETRY, "out of memory");
        return;
    }

    peer = ngx_omnibus_http_peer(hc);
    if (peer == NULL) {
        ngx_omnibus_http_end(h, NGX_OMNIBUS_RETRY, "no live upstream server");
        return;
    }

    /* round robin over the servers, keepalive within each */

    c = fresh ? NULL : ngx_omnibus_conn_pool_get(&hc->idle, peer->sockaddr);

    if (c) {
        h->c = c;
        h->reused = 1;

    } else {
        switch (ngx_omnibus_conn_open(peer->sockaddr, peer->socklen,
                                      &peer->name, route->log, &h->c))
        {
        case NGX_ERROR:
            ngx_omnibus_http_end(h, NGX_OMNIBUS_RETRY, "connect() failed");
            return;

        case NGX_AGAIN:
            c = h->c;
            c->data = h;
            c->read->handler = ngx_omnibus_http_read;
            c->write->handler = ngx_omnibus_http_write;
            ngx_add_timer(c->read, route->timeout);
            return;

        default:
            break;
        }

        c = h->c;
    }

    c->data = h;
    c->read->handler = ngx_omnibus_http_read;
    c->write->handler = ngx_omnibus_http_write;
    c->read->cancelable = 0;

    /* the whole attempt, connect to response, is under one timer */
    ngx_add_timer(c->read, route->timeout);

    ngx_omnibus_http_write(c->write);
}


/* the next server of the route's upstream that is not marked down */

static ngx_http_upstream_rr_peer_t *
ngx_omnibus_http_peer(ngx_omnibus_http_conf_t *hc)
{
    ngx_uint_t                      i, n;
    ngx_http_upstream_rr_peer_t    *peer;
    ngx_http_upstream_rr_peers_t   *peers;

    peers = hc->upstream->peer.data;

    if (peers == NULL || peers->number == 0) {
        return NULL;
    }

    ngx_http_upstream_rr_peers_rlock(peers);

    for (i = 0; i < peers->number; i++) {
        n = hc->next_peer++ % peers->number;

        for (peer = peers->peer; n && peer->next; n--) {
            peer = peer->next;
        }

        if (!peer->down) {
            ngx_http_upstream_rr_peers_unlock(peers);
            return peer;
        }
    }

    ngx_http_upstream_rr_peers_unlock(peers);

    return NULL;
}


static ngx_int_t
ngx_omnibus_http_request(ngx_omnibus_http_t *h)
{
    size_t                    len;
    ngx_buf_t                *b;
    ngx_str_t                 ctype, key;
    ngx_chain_t              *cl, **ll;
    ngx_omnibus_job_t        *job;
    ngx_omnibus_msg_t        *msg;
    ngx_omnibus_seg_t        *seg;
    ngx_omnibus_http_conf_t  *hc;

    job = h->job;
    msg = job->msg;
    hc = job->route->conf;

    ctype.data = ngx_omnibus_msg_ctype(msg);
    ctype.len = msg->ctype_len;

    if (ctype.len == 0) {
        ngx_str_set(&ctype, "application/octet-stream");
    }

    if (msg->key_len) {
        key.data = ngx_omnibus_msg_key(msg);
        key.len = msg->key_len;

    } else {
        key.data = msg->id;
        key.len = NGX_OMNIBUS_ID_LEN;
    }

    len = sizeof("POST  HTTP/1.1\r\nHost: \r\nContent-Type: \r\n"
                 "Content-Length: \r\nX-Omnibus-Id: \r\n"
                 "X-Omnibus-Topic: \r\nX-Omnibus-Priority: \r\n"
                 "X-Omnibus-Attempt: \r\nIdempotency-Key: \r\n\r\n")
          + hc->uri.len + hc->host.len + ctype.len + NGX_INT_T_LEN
          + NGX_OMNIBUS_ID_LEN + msg->topic_len + 1 + NGX_INT_T_LEN
          + key.len;

    b = ngx_create_temp_buf(h->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->last = ngx_sprintf(b->last,
                          "POST %V HTTP/1.1\r\n"
                          "Host: %V\r\n"
                          "Content-Type: %V\r\n"
                          "Content-Length: %uD\r\n"
                          "X-Omnibus-Id: %*s\r\n"
                          "X-Omnibus-Topic: %*s\r\n"
                          "X-Omnibus-Priority: %d\r\n"
                          "X-Omnibus-Attempt: %ui\r\n"
                          "Idempotency-Key: %V\r\n\r\n",
                          &hc->uri, &hc->host, &ctype, msg->len,
                          (size_t) NGX_OMNIBUS_ID_LEN, msg->id,
                          (size_t) msg->topic_len, ngx_omnibus_msg_topic(msg),
                          (int) msg->priority, job->attempt, &key);

    cl = ngx_alloc_chain_link(h->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    h->out = cl;
    ll = &cl->next;

    /* the body straight from the zone: the message stays while in flight */

    if (msg->head_len) {
        b = ngx_calloc_buf(h->pool);
        cl = ngx_alloc_chain_link(h->pool);
        if (b == NULL || cl == NULL) {
            return NGX_ERROR;
        }

        b->memory = 1;
        b->pos = ngx_omnibus_msg_head(msg);
        b->last = b->pos + msg->head_len;

        cl->buf = b;
        *ll = cl;
        ll = &cl->next;
    }

    for (seg = msg->more; seg; seg = seg->next) {
        b = ngx_calloc_buf(h->pool);
        cl = ngx_alloc_chain_link(h->pool);
        if (b == NULL || cl == NULL) {
            return NGX_ERROR;
        }

        b->memory = 1;
        b->pos = seg->data;
        b->last = seg->data + seg->len;

        cl->buf = b;
        *ll = cl;
        ll = &cl->next;
    }

    *ll = NULL;

    return NGX_OK;
}


static void
ngx_omnibus_http_write(ngx_event_t *wev)
{
    ngx_err_t            err;
    ngx_chain_t         *cl;
    ngx_connection_t    *c;
    ngx_omnibus_http_t  *h;

    c = wev->data;
    h = c->data;

    if (h->sent) {
        return;
    }

    if (!h->reused && !c->write->ready) {
        return;
    }

    if (!h->reused && h->out && !c->sent) {
        err = ngx_omnibus_conn_error(c);

        if (err) {
            ngx_log_error(NGX_LOG_ERR, c->log, err,
                          "omnibus route \"%V\": connect() failed",
                          &h->job->route->name);
            ngx_omnibus_http_end(h, NGX_OMNIBUS_RETRY, "connect() failed");
            return;
        }
    }

    cl = c->send_chain(c, h->out, 0);

    if (cl == NGX_CHAIN_ERROR) {
        ngx_omnibus_http_end(h, NGX_OMNIBUS_RETRY, "send() failed");
        return;
    }

    h->out = cl;

    if (cl) {
        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_omnibus_http_end(h, NGX_OMNIBUS_RETRY, "send() failed");
        }

        return;
    }

    h->sent = 1;

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_omnibus_http_end(h, NGX_OMNIBUS_RETRY, "recv() failed");
        return;
    }

    if (c->read->ready) {
        ngx_omnibus_http_read(c->read);
    }
}


static void
ngx_omnibus_http_read(ngx_event_t *rev)
{
    u_char               buf[4096];
    ssize_t              n;
    ngx_connection_t    *c;
    ngx_omnibus_job_t   *job;
    ngx_omnibus_http_t  *h;

    c = rev->data;
    h = c->data;

    if (rev->timedout) {
        ngx_log_error(NGX_LOG_ERR, c->log, NGX_ETIMEDOUT,
                      "omnibus route \"%V\": attempt timed out",
                      &h->job->route->name);
        h->close = 1;
        ngx_omnibus_http_end(h, NGX_OMNIBUS_RETRY, "timed out");
        return;
    }

    if (!h->sent) {
        /* an early answer or a close before the request went out */
        if (!h->reused || !rev->ready) {
            return;
        }
    }

    for ( ;; ) {

        if (!h->headers) {
            n = c->recv(c, h->head.last, h->head.end - h->head.last);

        } else {
            n = c->recv(c, buf,
                        (size_t) ngx_min(h->rest, (off_t) sizeof(buf)));
        }

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_omnibus_http_end(h, NGX_OMNIBUS_RETRY, "recv() failed");
            }

            return;
        }

        if (n == 0 || n == NGX_ERROR) {

            if (h->reused && h->head.last == h->head.start) {
                /* the server closed a kept-alive connection: not an attempt */
                job = h->job;
                ngx_close_connection(c);
                h->c = NULL;
                ngx_destroy_pool(h->pool);
                job->data = NULL;

                ngx_omnibus_http_attempt(job, 1);
                return;
            }

            h->close = 1;
            ngx_omnibus_http_end(h, NGX_OMNIBUS_RETRY,
                                 n == 0 ? "connection closed early"
                                        : "recv() failed");
            return;
        }

        if (h->headers) {
            h->rest -= n;

        } else {
            h->head.last += n;

            switch (ngx_omnibus_http_parse(h)) {

            case NGX_AGAIN:
                if (h->head.last == h->head.end) {
                    h->close = 1;
                    ngx_omnibus_http_end(h, NGX_OMNIBUS_RETRY,
                                         "response header too large");
                    return;
                }

                continue;

            case NGX_ERROR:
                h->close = 1;
                ngx_omnibus_http_end(h, NGX_OMNIBUS_RETRY,
                                     "invalid response");
                return;

            default:
                break;
            }
        }

        if (h->rest <= 0) {
            break;
        }
    }

    if (h->status.code >= 200 && h->status.code < 300) {
        ngx_omnibus_http_end(h, NGX_OMNIBUS_DELIVERED, NULL);

    } else if (h->status.code == 408 || h->status.code == 429
               || h->status.code >= 500)
    {
        ngx_omnibus_http_end(h, NGX_OMNIBUS_RETRY, NULL);

    } else {
        ngx_omnibus_http_end(h, NGX_OMNIBUS_PERMANENT, NULL);
    }
}


/*
 * The status line and the headers that decide the connection's fate, by
 * NGINX's own parsers, resumed where they stopped as more bytes come.
 */

static ngx_int_t
ngx_omnibus_http_parse(ngx_omnibus_http_t *h)
{
    off_t                length;
    size_t               name;
    ngx_int_t            rc;
    ngx_str_t            value;
    ngx_http_request_t  *r;

    r = &h->parser;

    /* the parser keeps its place in r->state; the code grows by digits */

    if (!h->status_line) {
        rc = ngx_http_parse_status_line(r, &h->head, &h->status);

        if (rc != NGX_OK) {
            return rc;
        }

        if (h->status.code < 100 || h->status.http_version >= 2000) {
            return NGX_ERROR;
        }

        h->status_line = 1;

        /* HTTP/1.0 closes unless told otherwise; simpler to close it */
        h->close = (h->status.http_version < NGX_HTTP_VERSION_11);
        h->rest = -1;
    }

    for ( ;; ) {
        rc = ngx_http_parse_header_line(r, &h->head, 1);

        if (rc == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        if (rc == NGX_HTTP_PARSE_HEADER_DONE) {
            break;
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        name = r->header_name_end - r->header_name_start;
        value.data = r->header_start;
        value.len = r->header_end - r->header_start;

        if (name == sizeof("Content-Length") - 1
            && ngx_strncasecmp(r->header_name_start,
                               (u_char *) "Content-Length", name)
               == 0)
        {
            length = ngx_atoof(value.data, value.len);
            if (length < 0) {
                return NGX_ERROR;
            }

            h->rest = length;

        } else if ((name == sizeof("Transfer-Encoding") - 1
                    && ngx_strncasecmp(r->header_name_start,
                                       (u_char *) "Transfer-Encoding", name)
                       == 0)
                   || (name == sizeof("Connection") - 1
                       && ngx_strncasecmp(r->header_name_start,
                                          (u_char *) "Connection", name)
                          == 0
                       && ngx_strlcasestrn(value.data,
                                           value.data + value.len,
                                           (u_char *) "close", 5 - 1)))
        {
            /* a chunked body is not worth parsing: close after the head */
            h->close = 1;
        }
    }

    h->headers = 1;

    if (h->rest < 0) {
        h->close = 1;
        h->rest = 0;
        return NGX_OK;
    }

    /* what came with the head counts against the body */

    h->rest -= h->head.last - h->head.pos;

    if (h->rest < 0) {
        h->close = 1;
        h->rest = 0;
    }

    return NGX_OK;
}


static void
ngx_omnibus_http_end(ngx_omnibus_http_t *h, ngx_omnibus_result_e rc,
    const char *error)
{
    size_t                    len;
    u_char                    buf[NGX_OMNIBUS_ERROR_LEN];
    ngx_connection_t         *c;
    ngx_omnibus_job_t        *job;
    ngx_omnibus_http_conf_t  *hc;

    job = h->job;
    hc = job->route->conf;
    c = h->c;

    if (error) {
        len = ngx_cpystrn(buf, (u_char *) error, sizeof(buf)) - buf;

    } else {
        len = ngx_snprintf(buf, sizeof(buf), "HTTP %ui", h->status.code)
              - buf;
    }

    if (c) {
        if (h->close || !h->sent || h->rest > 0) {
            ngx_close_connection(c);

        } else {
            ngx_omnibus_conn_pool_put(&hc->idle, c);
        }
    }

    ngx_destroy_pool(h->pool);
    job->data = NULL;

    ngx_omnibus_job_done(job, rc, buf, len);
}


/* a fast shutdown with the attempt under way: no verdict, no retry */

static void
ngx_omnibus_http_cancel(ngx_omnibus_job_t *job)
{
    ngx_omnibus_http_t  *h;

    h = job->data;

    if (h == NULL) {
        return;
    }

    if (h->c) {
        ngx_close_connection(h->c);
    }

    ngx_destroy_pool(h->pool);
    job->data = NULL;
}


static void
ngx_omnibus_http_exit(ngx_omnibus_route_t *route)
{
    ngx_omnibus_http_conf_t  *hc;

    hc = route->conf;

    ngx_omnibus_conn_pool_close(&hc->idle);
}
