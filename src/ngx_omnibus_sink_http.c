
/*
 * The webhook sink: a nonblocking HTTP/1.1 client on the event loop.
 * One attempt = one POST of the message to the route's URL over a
 * keepalive connection of the route's per-worker pool (or a new one to
 * the next upstream peer), bounded by the route's timeout.  The body is
 * sent straight from the message's chunks in the zone.
 */


#include "ngx_omnibus.h"


#define NGX_OMNIBUS_HTTP_HEAD    4096
#define NGX_OMNIBUS_HTTP_IDLE    64
#define NGX_OMNIBUS_HTTP_KEEP    60000


typedef struct {
    ngx_omnibus_job_t         *job;
    ngx_pool_t                *pool;
    ngx_connection_t          *c;
    ngx_chain_t               *out;
    off_t                      rest;         /* response body left, -1 */
    size_t                     len;          /* response bytes in head */
    ngx_uint_t                 status;
    unsigned                   reused:1;
    unsigned                   sent:1;
    unsigned                   headers:1;
    unsigned                   close:1;
    u_char                     head[NGX_OMNIBUS_HTTP_HEAD];
} ngx_omnibus_http_t;


static void ngx_omnibus_http_send(ngx_omnibus_job_t *job);
static void ngx_omnibus_http_exit(ngx_omnibus_route_t *route);
static void ngx_omnibus_http_attempt(ngx_omnibus_job_t *job,
    ngx_uint_t fresh);
static ngx_http_upstream_rr_peer_t *ngx_omnibus_http_peer(
    ngx_omnibus_route_t *route);
static ngx_int_t ngx_omnibus_http_connect(ngx_omnibus_http_t *h,
    ngx_http_upstream_rr_peer_t *peer);
static ngx_int_t ngx_omnibus_http_request(ngx_omnibus_http_t *h);
static void ngx_omnibus_http_write(ngx_event_t *wev);
static void ngx_omnibus_http_read(ngx_event_t *rev);
static ngx_int_t ngx_omnibus_http_parse(ngx_omnibus_http_t *h);
static void ngx_omnibus_http_end(ngx_omnibus_http_t *h,
    ngx_omnibus_result_e rc, const char *error);
static void ngx_omnibus_http_idle(ngx_event_t *ev);
static void ngx_omnibus_http_dummy(ngx_event_t *ev);


ngx_omnibus_sink_t  ngx_omnibus_sink_http = {
    "http",
    NULL,
    ngx_omnibus_http_send,
    NULL,
    ngx_omnibus_http_exit
};


static void
ngx_omnibus_http_send(ngx_omnibus_job_t *job)
{
    ngx_omnibus_http_attempt(job, 0);
}


static void
ngx_omnibus_http_attempt(ngx_omnibus_job_t *job, ngx_uint_t fresh)
{
    ngx_pool_t                   *pool;
    ngx_queue_t                  *q;
    ngx_connection_t             *c;
    ngx_omnibus_http_t           *h;
    ngx_omnibus_route_t          *route;
    ngx_http_upstream_rr_peer_t  *peer;

    route = job->route;

    pool = ngx_create_pool(1024, route->log);
    if (pool == NULL) {
        ngx_omnibus_delivery_done(job, NGX_OMNIBUS_RETRY,
                                  (u_char *) "out of memory", 13);
        return;
    }

    h = ngx_pcalloc(pool, sizeof(ngx_omnibus_http_t));
    if (h == NULL) {
        ngx_destroy_pool(pool);
        ngx_omnibus_delivery_done(job, NGX_OMNIBUS_RETRY,
                                  (u_char *) "out of memory", 13);
        return;
    }

    h->job = job;
    h->pool = pool;
    h->rest = -1;
    job->data = h;

    if (ngx_omnibus_http_request(h) != NGX_OK) {
        ngx_omnibus_http_end(h, NGX_OMNIBUS_RETRY, "out of memory");
        return;
    }

    peer = ngx_omnibus_http_peer(route);
    if (peer == NULL) {
        ngx_omnibus_http_end(h, NGX_OMNIBUS_RETRY, "no live upstream server");
        return;
    }

    /* round robin over the servers, keepalive within each */

    c = NULL;

    for (q = ngx_queue_head(&route->idle);
         !fresh && q != ngx_queue_sentinel(&route->idle);
         q = ngx_queue_next(q))
    {
        c = ngx_queue_data(q, ngx_connection_t, queue);

        if (c->sockaddr == peer->sockaddr) {
            break;
        }

        c = NULL;
    }

    if (c) {
        ngx_queue_remove(&c->queue);
        route->nidle--;
        c->idle = 0;

        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        h->c = c;
        h->reused = 1;

    } else {
        switch (ngx_omnibus_http_connect(h, peer)) {

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
ngx_omnibus_http_peer(ngx_omnibus_route_t *route)
{
    ngx_uint_t                      i, n;
    ngx_http_upstream_rr_peer_t    *peer;
    ngx_http_upstream_rr_peers_t   *peers;

    peers = route->upstream->peer.data;

    if (peers == NULL || peers->number == 0) {
        return NULL;
    }

    ngx_http_upstream_rr_peers_rlock(peers);

    for (i = 0; i < peers->number; i++) {
        n = route->next_peer++ % peers->number;

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
ngx_omnibus_http_connect(ngx_omnibus_http_t *h,
    ngx_http_upstream_rr_peer_t *peer)
{
    ngx_int_t               rc;
    ngx_peer_connection_t   pc;
    ngx_omnibus_route_t    *route;

    route = h->job->route;

    ngx_memzero(&pc, sizeof(ngx_peer_connection_t));

    pc.sockaddr = peer->sockaddr;
    pc.socklen = peer->socklen;
    pc.name = &peer->name;
    pc.get = ngx_event_get_peer;
    pc.log = route->log;
    pc.log_error = NGX_ERROR_ERR;
    pc.tries = 1;

    rc = ngx_event_connect_peer(&pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (pc.connection) {
            ngx_close_connection(pc.connection);
        }

        return NGX_ERROR;
    }

    h->c = pc.connection;
    h->c->pool = NULL;

    /* which server: keepalive connections are found again by it */
    h->c->sockaddr = peer->sockaddr;
    h->c->socklen = peer->socklen;

    return rc;
}


static ngx_int_t
ngx_omnibus_http_request(ngx_omnibus_http_t *h)
{
    size_t                len;
    ngx_buf_t            *b;
    ngx_str_t             ctype, key;
    ngx_chain_t          *cl, **ll;
    ngx_omnibus_job_t    *job;
    ngx_omnibus_msg_t    *msg;
    ngx_omnibus_seg_t    *seg;
    ngx_omnibus_route_t  *route;

    job = h->job;
    msg = job->msg;
    route = job->route;

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
          + route->uri.len + route->host.len + ctype.len + NGX_INT_T_LEN
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
                          &route->uri, &route->host, &ctype, msg->len,
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
    int                  err;
    socklen_t            len;
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

    if (!h->reused && !h->headers && h->out && !c->sent) {
        /* a connect in progress has finished: did it succeed? */
        err = 0;
        len = sizeof(int);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len)
            == -1)
        {
            err = ngx_socket_errno;
        }

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
            n = c->recv(c, h->head + h->len, NGX_OMNIBUS_HTTP_HEAD - h->len);

        } else {
            n = c->recv(c, buf, (size_t) ngx_min(h->rest, (off_t) sizeof(buf)));
        }

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_omnibus_http_end(h, NGX_OMNIBUS_RETRY, "recv() failed");
            }

            return;
        }

        if (n == 0 || n == NGX_ERROR) {

            if (h->reused && h->len == 0) {
                /* the server closed a kept-alive connection: not an attempt */
                job = h->job;
                h->close = 1;
                ngx_close_connection(c);
                h->c = NULL;
                ngx_destroy_pool(h->pool);

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
            h->len += n;

            switch (ngx_omnibus_http_parse(h)) {

            case NGX_AGAIN:
                if (h->len == NGX_OMNIBUS_HTTP_HEAD) {
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

    if (h->status >= 200 && h->status < 300) {
        ngx_omnibus_http_end(h, NGX_OMNIBUS_DELIVERED, NULL);

    } else if (h->status == 408 || h->status == 429 || h->status >= 500) {
        ngx_omnibus_http_end(h, NGX_OMNIBUS_RETRY, NULL);

    } else {
        ngx_omnibus_http_end(h, NGX_OMNIBUS_PERMANENT, NULL);
    }
}


/* the status line and the headers that decide the connection's fate */

static ngx_int_t
ngx_omnibus_http_parse(ngx_omnibus_http_t *h)
{
    u_char   *p, *last, *eol, *colon, *v;
    size_t    name;
    off_t     length;

    last = h->head + h->len;

    p = ngx_strlcasestrn(h->head, last, (u_char *) "\r\n\r\n", 4 - 1);
    if (p == NULL) {
        return NGX_AGAIN;
    }

    if (h->len < 12 || ngx_strncmp(h->head, "HTTP/1.", 7) != 0
        || h->head[8] != ' ')
    {
        return NGX_ERROR;
    }

    h->status = ngx_atoi(h->head + 9, 3);
    if (h->status == (ngx_uint_t) NGX_ERROR || h->status < 100) {
        return NGX_ERROR;
    }

    /* HTTP/1.0 closes unless told otherwise; simpler to close it */
    h->close = (h->head[7] == '0');

    length = -1;
    last = p + 4;

    for (p = ngx_strlchr(h->head, last, '\n') + 1; p < last - 2; p = eol + 1)
    {
        eol = ngx_strlchr(p, last, '\n');
        colon = ngx_strlchr(p, eol, ':');

        if (colon == NULL) {
            continue;
        }

        name = colon - p;

        for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++) {
            /* void */
        }

        if (name == 14 && ngx_strncasecmp(p, (u_char *) "Content-Length",
                                          14) == 0)
        {
            length = ngx_atoof(v, eol - v - (eol[-1] == '\r'));
            if (length < 0) {
                return NGX_ERROR;
            }

        } else if ((name == 17
                    && ngx_strncasecmp(p, (u_char *) "Transfer-Encoding",
                                       17) == 0)
                   || (name == 10
                       && ngx_strncasecmp(p, (u_char *) "Connection", 10)
                          == 0
                       && ngx_strlcasestrn(v, eol, (u_char *) "close", 4)))
        {
            /* a chunked body is not worth parsing: close after the head */
            h->close = 1;
        }
    }

    h->headers = 1;

    if (length < 0) {
        h->close = 1;
        h->rest = 0;
        return NGX_OK;
    }

    h->rest = length - (h->head + h->len - last);

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
    size_t                len;
    u_char                buf[NGX_OMNIBUS_ERROR_LEN];
    ngx_connection_t     *c;
    ngx_omnibus_job_t    *job;
    ngx_omnibus_route_t  *route;

    job = h->job;
    route = job->route;
    c = h->c;

    if (error) {
        len = ngx_cpystrn(buf, (u_char *) error, sizeof(buf)) - buf;

    } else {
        len = ngx_snprintf(buf, sizeof(buf), "HTTP %ui", h->status) - buf;
    }

    if (c) {
        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        if (h->close || !h->sent || h->rest > 0 || ngx_exiting
            || route->nidle >= NGX_OMNIBUS_HTTP_IDLE)
        {
            ngx_close_connection(c);

        } else {
            c->data = route;
            c->idle = 1;
            c->read->handler = ngx_omnibus_http_idle;
            c->write->handler = ngx_omnibus_http_dummy;
            c->read->cancelable = 1;

            ngx_add_timer(c->read, NGX_OMNIBUS_HTTP_KEEP);

            ngx_queue_insert_head(&route->idle, &c->queue);
            route->nidle++;
        }
    }

    ngx_destroy_pool(h->pool);
    job->data = NULL;

    ngx_omnibus_delivery_done(job, rc, buf, len);
}


static void
ngx_omnibus_http_idle(ngx_event_t *ev)
{
    u_char                buf[1];
    ssize_t               n;
    ngx_connection_t     *c;
    ngx_omnibus_route_t  *route;

    c = ev->data;
    route = c->data;

    if (!c->close && !ev->timedout) {
        n = recv(c->fd, buf, 1, MSG_PEEK);

        if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
            if (ngx_handle_read_event(ev, 0) == NGX_OK) {
                return;
            }
        }
    }

    /* closed by the server, timed out, or the worker is shutting down */

    ngx_queue_remove(&c->queue);
    route->nidle--;
    ngx_close_connection(c);
}


static void
ngx_omnibus_http_dummy(ngx_event_t *ev)
{
}


static void
ngx_omnibus_http_exit(ngx_omnibus_route_t *route)
{
    ngx_queue_t       *q;
    ngx_connection_t  *c;

    while (!ngx_queue_empty(&route->idle)) {
        q = ngx_queue_head(&route->idle);
        ngx_queue_remove(q);

        c = ngx_queue_data(q, ngx_connection_t, queue);
        ngx_close_connection(c);
    }

    route->nidle = 0;
}
