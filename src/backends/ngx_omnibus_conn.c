
/*
 * The external-connection layer: sockets on the event loop, idle pools,
 * and reconnecting.  See ngx_omnibus_conn.h.
 */


#include <ngx_omnibus_conn.h>


static void ngx_omnibus_conn_idle(ngx_event_t *ev);
static void ngx_omnibus_conn_dummy(ngx_event_t *ev);


void
ngx_omnibus_conn_pool_init(ngx_omnibus_conn_pool_t *pool, ngx_uint_t max_idle,
    ngx_msec_t keepalive)
{
    ngx_queue_init(&pool->idle);
    pool->nidle = 0;
    pool->max_idle = max_idle;
    pool->keepalive = keepalive;
}


/*
 * A nonblocking connect() to a numeric address: NGX_OK connected,
 * NGX_AGAIN in progress (the write event says when; then
 * ngx_omnibus_conn_error() says how), NGX_ERROR.
 */

ngx_int_t
ngx_omnibus_conn_open(struct sockaddr *sockaddr, socklen_t socklen,
    ngx_str_t *name, ngx_log_t *log, ngx_connection_t **cp)
{
    ngx_int_t              rc;
    ngx_connection_t      *c;
    ngx_peer_connection_t  pc;

    ngx_memzero(&pc, sizeof(ngx_peer_connection_t));

    pc.sockaddr = sockaddr;
    pc.socklen = socklen;
    pc.name = name;
    pc.get = ngx_event_get_peer;
    pc.log = log;
    pc.log_error = NGX_ERROR_ERR;
    pc.tries = 1;

    rc = ngx_event_connect_peer(&pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (pc.connection) {
            ngx_close_connection(pc.connection);
        }

        return NGX_ERROR;
    }

    c = pc.connection;
    c->pool = NULL;

    /* which server: idle connections are found again by it */
    c->sockaddr = sockaddr;
    c->socklen = socklen;

    *cp = c;

    return rc;
}


/* a connect() in progress has finished: 0, or why it failed */

ngx_err_t
ngx_omnibus_conn_error(ngx_connection_t *c)
{
    int        err;
    socklen_t  len;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    return err;
}


ngx_connection_t *
ngx_omnibus_conn_pool_get(ngx_omnibus_conn_pool_t *pool,
    struct sockaddr *sockaddr)
{
    ngx_queue_t       *q;
    ngx_connection_t  *c;

    for (q = ngx_queue_head(&pool->idle);
         q != ngx_queue_sentinel(&pool->idle);
         q = ngx_queue_next(q))
    {
        c = ngx_queue_data(q, ngx_connection_t, queue);

        if (c->sockaddr == sockaddr) {
            ngx_queue_remove(q);
            pool->nidle--;
            c->idle = 0;

            if (c->read->timer_set) {
                ngx_del_timer(c->read);
            }

            return c;
        }
    }

    return NULL;
}


/* a connection that finished an exchange cleanly: keep it, or close it */

void
ngx_omnibus_conn_pool_put(ngx_omnibus_conn_pool_t *pool, ngx_connection_t *c)
{
    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (ngx_exiting || pool->nidle >= pool->max_idle) {
        ngx_close_connection(c);
        return;
    }

    c->data = pool;
    c->idle = 1;
    c->read->handler = ngx_omnibus_conn_idle;
    c->write->handler = ngx_omnibus_conn_dummy;
    c->read->cancelable = 1;

    ngx_add_timer(c->read, pool->keepalive);

    ngx_queue_insert_head(&pool->idle, &c->queue);
    pool->nidle++;
}


static void
ngx_omnibus_conn_idle(ngx_event_t *ev)
{
    u_char                    buf[1];
    ssize_t                   n;
    ngx_connection_t         *c;
    ngx_omnibus_conn_pool_t  *pool;

    c = ev->data;
    pool = c->data;

    if (!c->close && !ev->timedout) {
        n = recv(c->fd, buf, 1, MSG_PEEK);

        if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
            if (ngx_handle_read_event(ev, 0) == NGX_OK) {
                return;
            }
        }
    }

    /* closed by the other end, timed out, or the worker is shutting down */

    ngx_queue_remove(&c->queue);
    pool->nidle--;
    ngx_close_connection(c);
}


static void
ngx_omnibus_conn_dummy(ngx_event_t *ev)
{
}


void
ngx_omnibus_conn_pool_close(ngx_omnibus_conn_pool_t *pool)
{
    ngx_queue_t       *q;
    ngx_connection_t  *c;

    while (!ngx_queue_empty(&pool->idle)) {
        q = ngx_queue_head(&pool->idle);
        ngx_queue_remove(q);

        c = ngx_queue_data(q, ngx_connection_t, queue);
        ngx_close_connection(c);
    }

    pool->nidle = 0;
}


/*
 * A socket a client library opened, put on the event loop: the caller
 * sets c->data and the read and write handlers.  Edge-triggered, as all
 * of NGINX: a read handler drains until EAGAIN.
 */

ngx_connection_t *
ngx_omnibus_conn_wrap(ngx_socket_t fd, ngx_log_t *log)
{
    ngx_connection_t  *c;

    if (ngx_nonblocking(fd) == -1) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_socket_errno,
                      ngx_nonblocking_n " failed");
        return NULL;
    }

    c = ngx_get_connection(fd, log);
    if (c == NULL) {
        return NULL;
    }

    c->log = log;
    c->read->log = log;
    c->write->log = log;

    if (ngx_add_conn && ngx_add_conn(c) != NGX_OK) {
        ngx_free_connection(c);
        return NULL;
    }

    return c;
}


/*
 * Off the event loop.  Libraries that close their socket themselves
 * (hiredis in redisFree(), libpq in PQfinish()) must not have it closed
 * twice: NGX_OMNIBUS_CONN_KEEP.  One that has closed it already (libpq on
 * a connection the server ended) must not have it taken out of epoll
 * either: the kernel did that, and the fd may be reused.
 */

void
ngx_omnibus_conn_unwrap(ngx_connection_t *c, ngx_uint_t fd)
{
    ngx_uint_t  flags;

    if (fd == NGX_OMNIBUS_CONN_CLOSE) {
        ngx_close_connection(c);
        return;
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    /* the fd stays open: it must leave epoll for real, not by close() */

    flags = (fd == NGX_OMNIBUS_CONN_CLOSED) ? NGX_CLOSE_EVENT : 0;

    if (ngx_del_conn) {
        (void) ngx_del_conn(c, flags);

    } else {
        if (c->read->active || c->read->disabled) {
            (void) ngx_del_event(c->read, NGX_READ_EVENT, flags);
        }

        if (c->write->active || c->write->disabled) {
            (void) ngx_del_event(c->write, NGX_WRITE_EVENT, flags);
        }
    }

    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);
}


void
ngx_omnibus_reconnect_init(ngx_omnibus_reconnect_t *rc, ngx_msec_t base,
    ngx_msec_t cap, ngx_omnibus_breaker_t *breaker,
    ngx_event_handler_pt handler, void *data, ngx_log_t *log)
{
    rc->base = ngx_max(base, 1);
    rc->cap = ngx_max(cap, rc->base);
    rc->breaker = breaker;
    rc->timer.handler = handler;
    rc->timer.data = data;
    rc->timer.log = log;
    rc->timer.cancelable = 1;
    rc->failures = 0;
}


/*
 * A connect failed or the connection was lost: the next attempt comes
 * after a capped exponential backoff with jitter (so that workers and
 * pods do not reconnect in step), and not while the breaker is open.
 */

ngx_msec_t
ngx_omnibus_reconnect_later(ngx_omnibus_reconnect_t *rc)
{
    ngx_msec_t  delay;

    if (rc->breaker) {
        ngx_omnibus_breaker_record(rc->breaker, 0, 1);
    }

    delay = ngx_omnibus_backoff(rc->base, rc->cap, rc->failures++, 1);

    if (rc->breaker
        && rc->breaker->sh->state == NGX_OMNIBUS_BREAKER_OPEN)
    {
        delay = ngx_max(delay, ngx_omnibus_breaker_open_for(rc->breaker));
    }

    if (rc->timer.timer_set) {
        ngx_del_timer(&rc->timer);
    }

    if (!ngx_exiting) {
        ngx_add_timer(&rc->timer, delay);
    }

    return delay;
}


void
ngx_omnibus_reconnect_done(ngx_omnibus_reconnect_t *rc)
{
    rc->failures = 0;

    if (rc->breaker) {
        ngx_omnibus_breaker_record(rc->breaker, 0, 0);
    }

    if (rc->timer.timer_set) {
        ngx_del_timer(&rc->timer);
    }
}


/*
 * A secret from a file (a mounted Kubernetes Secret), read by the master
 * at configuration time: workers need no access to it.  Trailing line
 * ends go; the caller wipes buf when done with it.
 */

char *
ngx_omnibus_conf_secret(ngx_conf_t *cf, const char *directive,
    ngx_str_t *file, u_char *buf, size_t size, size_t *len)
{
    ssize_t   n;
    ngx_fd_t  fd;

    if (ngx_conf_full_name(cf->cycle, file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(file->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "%s: cannot open password_file \"%V\"",
                           directive, file);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_fd(fd, buf, size);
    (void) ngx_close_file(fd);

    if (n < 0 || (size_t) n == size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s: cannot read password_file \"%V\"",
                           directive, file);
        return NGX_CONF_ERROR;
    }

    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }

    *len = n;

    return NGX_CONF_OK;
}
