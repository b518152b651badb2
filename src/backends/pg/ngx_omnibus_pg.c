
/*
 * libpq on the event loop: see ngx_omnibus_pg.h.
 *
 * A connection's socket is libpq's: it is watched through the connection
 * layer and closed by PQfinish() only.  Epoll is edge-triggered, and
 * libpq reads at most its buffer per call, so reads go on while the
 * kernel holds more.  libpq 15's PQcancel() blocks, so a slow statement
 * is ended by the server's statement_timeout (set for every connection),
 * and a connection that does not answer at all is dropped.
 */


#include <ngx_omnibus_pg.h>
#include <sys/ioctl.h>


typedef struct {
    ngx_queue_t                 queue;       /* idle */
    ngx_queue_t                 link;        /* all */
    PGconn                     *pg;
    ngx_connection_t           *c;
    ngx_omnibus_pg_pool_t      *pool;
    ngx_omnibus_pg_op_t        *op;          /* NULL: setup or idle */
    ngx_uint_t                  state;
    ngx_int_t                   pending;     /* results still due */
    ngx_uint_t                  failed;      /* a statement failed */
    ngx_uint_t                  opening;     /* not yet set up */
    ngx_msec_t                  born;
    ngx_event_t                 timer;
    ngx_omnibus_pg_op_t         setup;
} ngx_omnibus_pg_conn_t;


static ngx_int_t ngx_omnibus_pg_open(ngx_omnibus_pg_pool_t *pool);
static void ngx_omnibus_pg_handler(ngx_event_t *ev);
static void ngx_omnibus_pg_connect(ngx_omnibus_pg_conn_t *pc);
static void ngx_omnibus_pg_start(ngx_omnibus_pg_conn_t *pc,
    ngx_omnibus_pg_op_t *op);
static void ngx_omnibus_pg_flush(ngx_omnibus_pg_conn_t *pc);
static void ngx_omnibus_pg_read(ngx_omnibus_pg_conn_t *pc);
static void ngx_omnibus_pg_finish(ngx_omnibus_pg_conn_t *pc);
static void ngx_omnibus_pg_timeout(ngx_event_t *ev);
static void ngx_omnibus_pg_lost(ngx_omnibus_pg_conn_t *pc, ngx_uint_t reason,
    const char *why);
static void ngx_omnibus_pg_free(ngx_omnibus_pg_conn_t *pc);
static void ngx_omnibus_pg_state(ngx_omnibus_pg_conn_t *pc,
    ngx_uint_t state);
static void ngx_omnibus_pg_notice(void *data, const char *message);
static void ngx_omnibus_pg_retry(ngx_event_t *ev);
static void ngx_omnibus_pg_setup_result(ngx_omnibus_pg_op_t *op,
    PGresult *res);
static void ngx_omnibus_pg_setup_done(ngx_omnibus_pg_op_t *op,
    ngx_int_t rc);
static void ngx_omnibus_pg_waited(ngx_event_t *ev);
static void ngx_omnibus_pg_fail_waiting(ngx_omnibus_pg_pool_t *pool,
    ngx_uint_t reason, const char *why);


/* configuration: the URL, checked by libpq itself, and settings */

char *
ngx_omnibus_pg_conf_url(ngx_conf_t *cf, ngx_omnibus_pg_conf_t *conf,
    ngx_str_t *url, ngx_str_t *name)
{
    u_char             *p;
    char               *err, *host, *port, *user, *db, *ssl;
    ngx_url_t           u;
    PQconninfoOption   *opts, *o;

    if (ngx_array_init(&conf->keywords, cf->pool, 16, sizeof(char *))
        != NGX_OK
        || ngx_array_init(&conf->values, cf->pool, 16, sizeof(char *))
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (!(url->len > 13
          && ngx_strncmp(url->data, "postgresql://", 13) == 0)
        && !(url->len > 11 && ngx_strncmp(url->data, "postgres://", 11) == 0))
    {
        return "needs a postgresql:// URL";
    }

    p = ngx_pnalloc(cf->pool, url->len + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    (void) ngx_cpystrn(p, url->data, url->len + 1);

    err = NULL;
    opts = PQconninfoParse((char *) p, &err);

    if (opts == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "omnibus_store: invalid "
                           "URL \"%V\": %s", url, err ? err : "no memory");
        PQfreemem(err);
        return NGX_CONF_ERROR;
    }

    host = NULL;
    port = "5432";
    user = "";
    db = "";
    ssl = NULL;

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL) {
            continue;
        }

        if (ngx_strcmp(o->keyword, "password") == 0) {
            PQconninfoFree(opts);
            return "has a password in its URL: use password_file= "
                   "(secrets stay out of the configuration)";
        }

        if (ngx_strcmp(o->keyword, "host") == 0) {
            host = o->val;
            continue;
        }

        if (ngx_strcmp(o->keyword, "port") == 0) {
            port = o->val;

        } else if (ngx_strcmp(o->keyword, "user") == 0) {
            user = o->val;

        } else if (ngx_strcmp(o->keyword, "dbname") == 0) {
            db = o->val;

        } else if (ngx_strcmp(o->keyword, "sslmode") == 0) {
            ssl = o->val;
        }

        if (ngx_omnibus_pg_conf_set(cf, conf, o->keyword, (u_char *) o->val,
                                    ngx_strlen(o->val))
            != NGX_CONF_OK)
        {
            PQconninfoFree(opts);
            return NGX_CONF_ERROR;
        }
    }

    if (host == NULL || host[0] == '\0' || host[0] == '/'
        || ngx_strchr(host, ',') != NULL)
    {
        PQconninfoFree(opts);
        return "needs one TCP host in its URL";
    }

    /*
     * TLS when the URL asks for it, and then for sure: "prefer" and
     * "allow" may retry on a new socket, which an event loop watching
     * the first one would miss.
     */

    if (ssl && (ngx_strcmp(ssl, "prefer") == 0
                || ngx_strcmp(ssl, "allow") == 0))
    {
        PQconninfoFree(opts);
        return "takes sslmode=disable, require, verify-ca or verify-full "
               "(prefer and allow may reconnect on another socket)";
    }

    /* resolved now: a worker never waits for a name server */

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url.len = ngx_strlen(host);
    u.url.data = (u_char *) host;
    u.default_port = (in_port_t) ngx_atoi((u_char *) port,
                                          ngx_strlen(port));
    u.no_resolve = 0;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "omnibus_store: host "
                           "\"%s\" of \"%V\" does not resolve%s%s", host,
                           url, u.err ? ": " : "", u.err ? u.err : "");
        PQconninfoFree(opts);
        return NGX_CONF_ERROR;
    }

    p = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (p == NULL) {
        PQconninfoFree(opts);
        return NGX_CONF_ERROR;
    }

    p[ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, p,
                    NGX_SOCKADDR_STRLEN, 0)] = '\0';

    conf->target.len = ngx_strlen(user) + ngx_strlen(host) + ngx_strlen(port)
                       + ngx_strlen(db) + 3;
    conf->target.data = ngx_pnalloc(cf->pool, conf->target.len);
    if (conf->target.data == NULL) {
        PQconninfoFree(opts);
        return NGX_CONF_ERROR;
    }

    (void) ngx_sprintf(conf->target.data, "%s@%s:%s/%s", user, host, port,
                       db);

    PQconninfoFree(opts);

    if (ngx_omnibus_pg_conf_set(cf, conf, "host", p, ngx_strlen(p))
        != NGX_CONF_OK
        || ngx_omnibus_pg_conf_set(cf, conf, "hostaddr", p, ngx_strlen(p))
           != NGX_CONF_OK
        || ngx_omnibus_pg_conf_set(cf, conf, "gssencmode",
                                   (u_char *) "disable", 7)
           != NGX_CONF_OK
        || (ssl == NULL   /* given: set in the loop above */
            && ngx_omnibus_pg_conf_set(cf, conf, "sslmode",
                                       (u_char *) "disable", 7)
               != NGX_CONF_OK)
        || ngx_omnibus_pg_conf_set(cf, conf, "application_name",
                                   name->data, name->len)
           != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* a libpq keyword: set, or replaced */

char *
ngx_omnibus_pg_conf_set(ngx_conf_t *cf, ngx_omnibus_pg_conf_t *conf,
    const char *keyword, u_char *value, size_t len)
{
    char        **k, **v, *s;
    ngx_uint_t    i;

    s = ngx_pnalloc(cf->pool, len + 1);
    if (s == NULL) {
        return NGX_CONF_ERROR;
    }

    (void) ngx_cpystrn((u_char *) s, value, len + 1);

    k = conf->keywords.elts;
    v = conf->values.elts;

    for (i = 0; i < conf->keywords.nelts; i++) {
        if (ngx_strcmp(k[i], keyword) == 0) {
            v[i] = s;
            return NGX_CONF_OK;
        }
    }

    k = ngx_array_push(&conf->keywords);
    v = ngx_array_push(&conf->values);

    if (k == NULL || v == NULL) {
        return NGX_CONF_ERROR;
    }

    *k = (char *) keyword;
    *v = s;

    return NGX_CONF_OK;
}


/* a worker starts: one connection now, more when work waits for them */

ngx_int_t
ngx_omnibus_pg_init(ngx_omnibus_pg_pool_t *pool, ngx_log_t *log)
{
    char  **k, **v;

    /* the NULL ends of the keyword lists */

    k = ngx_array_push(&pool->conf->keywords);
    v = ngx_array_push(&pool->conf->values);

    if (k == NULL || v == NULL) {
        return NGX_ERROR;
    }

    *k = NULL;
    *v = NULL;
    pool->conf->keywords.nelts--;
    pool->conf->values.nelts--;

    ngx_queue_init(&pool->idle);
    ngx_queue_init(&pool->all);
    ngx_queue_init(&pool->waiting);
    pool->log = log;

    pool->waited.handler = ngx_omnibus_pg_waited;
    pool->waited.data = pool;
    pool->waited.log = log;

    ngx_omnibus_reconnect_init(&pool->reconnect, 100, 10000, &pool->breaker,
                               ngx_omnibus_pg_retry, pool, log);

    (void) ngx_omnibus_pg_open(pool);

    return NGX_OK;
}


/*
 * Run an operation now on an idle connection, or as soon as one is free.
 * NGX_DECLINED: the database cannot be reached now (the breaker is open,
 * or connecting failed and no connection is left); nothing was queued.
 */

ngx_int_t
ngx_omnibus_pg_run(ngx_omnibus_pg_pool_t *pool, ngx_omnibus_pg_op_t *op)
{
    ngx_queue_t            *q;
    ngx_omnibus_pg_conn_t  *pc;

    if (!ngx_omnibus_pg_available(pool)) {
        return NGX_DECLINED;
    }

    if (!ngx_queue_empty(&pool->idle)) {
        q = ngx_queue_head(&pool->idle);
        ngx_queue_remove(q);
        pc = ngx_queue_data(q, ngx_omnibus_pg_conn_t, queue);

        ngx_omnibus_pg_start(pc, op);
        return NGX_OK;
    }

    ngx_queue_insert_tail(&pool->waiting, &op->queue);

    /* not cancelable: a quitting worker waits for work that waits */

    if (!pool->waited.timer_set) {
        ngx_add_timer(&pool->waited, pool->conf->timeout);
    }

    if (pool->opening == 0
        && pool->nconns < pool->conf->size + pool->conf->overflow
        && !pool->reconnect.timer.timer_set
        && (ngx_msec_int_t) (ngx_current_msec - pool->extra_after) >= 0)
    {
        (void) ngx_omnibus_pg_open(pool);
    }

    return NGX_OK;
}


/* the breaker is the store's to consult: this says if a server answers */

ngx_uint_t
ngx_omnibus_pg_available(ngx_omnibus_pg_pool_t *pool)
{
    return !pool->down || pool->nconns > pool->opening;
}


/* a statement of a pipeline: parameters only, text or binary */

ngx_int_t
ngx_omnibus_pg_send(PGconn *pg, const char *stmt, int n,
    const char *const *values, const int *lengths, const int *formats)
{
    return PQsendQueryPrepared(pg, stmt, n, values, lengths, formats, 0)
           ? NGX_OK : NGX_ERROR;
}


/* a statement's result: an error fails the operation */

ngx_int_t
ngx_omnibus_pg_check(ngx_omnibus_pg_op_t *op, PGresult *res,
    ngx_uint_t reason)
{
    ExecStatusType  st;

    st = PQresultStatus(res);

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        return NGX_OK;
    }

    ngx_omnibus_pg_failed(op, res, reason);

    return NGX_ERROR;
}


/* an error result: the operation fails with the server's message */

void
ngx_omnibus_pg_failed(ngx_omnibus_pg_op_t *op, PGresult *res,
    ngx_uint_t reason)
{
    char  *msg;

    if (op->error[0]) {
        return;
    }

    msg = res ? PQresultErrorMessage(res) : "";

    op->reason = reason;
    (void) ngx_cpystrn(op->error, (u_char *) msg, sizeof(op->error));
}


void
ngx_omnibus_pg_close(ngx_omnibus_pg_pool_t *pool)
{
    ngx_queue_t            *q;
    ngx_omnibus_pg_conn_t  *pc;

    if (pool->reconnect.timer.timer_set) {
        ngx_del_timer(&pool->reconnect.timer);
    }

    pool->closing = 1;

    while (!ngx_queue_empty(&pool->all)) {
        q = ngx_queue_head(&pool->all);
        pc = ngx_queue_data(q, ngx_omnibus_pg_conn_t, link);
        ngx_omnibus_pg_lost(pc, NGX_OMNIBUS_PG_CONNECT, "worker exits");
    }

    ngx_omnibus_pg_fail_waiting(pool, NGX_OMNIBUS_PG_CONNECT,
                                "worker exits");
}


static ngx_int_t
ngx_omnibus_pg_open(ngx_omnibus_pg_pool_t *pool)
{
    PGconn                 *pg;
    ngx_socket_t            fd;
    ngx_omnibus_pg_conn_t  *pc;

    pg = PQconnectStartParams((const char *const *) pool->conf->keywords.elts,
                              (const char *const *) pool->conf->values.elts,
                              0);

    if (pg == NULL || PQstatus(pg) == CONNECTION_BAD
        || PQsetnonblocking(pg, 1) != 0 || PQsocket(pg) < 0)
    {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "omnibus store %V: cannot start a connection: %s",
                      &pool->conf->target,
                      pg ? PQerrorMessage(pg) : "no memory");
        if (pg) {
            PQfinish(pg);
        }

        goto failed;
    }

    /* notices ("already exists, skipping") would go to stderr */
    (void) PQsetNoticeProcessor(pg, ngx_omnibus_pg_notice, pool);

    fd = PQsocket(pg);

    pc = ngx_calloc(sizeof(ngx_omnibus_pg_conn_t), pool->log);
    if (pc == NULL) {
        PQfinish(pg);
        goto failed;
    }

    pc->c = ngx_omnibus_conn_wrap(fd, pool->log);
    if (pc->c == NULL) {
        ngx_free(pc);
        PQfinish(pg);
        goto failed;
    }

    pc->pg = pg;
    pc->pool = pool;
    pc->born = ngx_current_msec;
    pc->c->data = pc;
    pc->c->read->handler = ngx_omnibus_pg_handler;
    pc->c->write->handler = ngx_omnibus_pg_handler;

    pc->timer.handler = ngx_omnibus_pg_timeout;
    pc->timer.data = pc;
    pc->timer.log = pool->log;
    pc->timer.cancelable = 1;

    pc->state = NGX_OMNIBUS_PG_CONNECTING;
    (void) ngx_atomic_fetch_add(&pool->states[pc->state], 1);
    pool->opening++;
    pc->opening = 1;

    ngx_queue_insert_tail(&pool->all, &pc->link);
    pool->nconns++;

    ngx_add_timer(&pc->timer, pool->conf->timeout);

    /* the socket is writable once connected: libpq polls from there */
    return NGX_OK;

failed:

    if (pool->nconns > pool->opening) {
        pool->extra_after = ngx_current_msec + 1000;
        return NGX_ERROR;
    }

    pool->down = 1;
    (void) ngx_omnibus_reconnect_later(&pool->reconnect);

    return NGX_ERROR;
}


static void
ngx_omnibus_pg_notice(void *data, const char *message)
{
    ngx_log_debug1(NGX_LOG_DEBUG_EVENT,
                   ((ngx_omnibus_pg_pool_t *) data)->log, 0,
                   "omnibus pg notice: %s", message);
}


static void
ngx_omnibus_pg_retry(ngx_event_t *ev)
{
    ngx_omnibus_pg_pool_t  *pool;

    pool = ev->data;

    if (ngx_exiting || pool->nconns) {
        return;
    }

    (void) ngx_omnibus_pg_open(pool);
}


static void
ngx_omnibus_pg_handler(ngx_event_t *ev)
{
    ngx_connection_t       *c;
    ngx_omnibus_pg_conn_t  *pc;

    c = ev->data;
    pc = c->data;

    if (pc->state == NGX_OMNIBUS_PG_CONNECTING) {
        ngx_omnibus_pg_connect(pc);
        return;
    }

    if (ev->write) {
        ngx_omnibus_pg_flush(pc);
        return;
    }

    ngx_omnibus_pg_read(pc);
}


static void
ngx_omnibus_pg_connect(ngx_omnibus_pg_conn_t *pc)
{
    int                     n;
    ngx_int_t               sent;
    ngx_uint_t              turns;
    ngx_socket_t            fd;
    ngx_connection_t       *c;
    PostgresPollingStatusType  st;

    turns = 0;

    for ( ;; ) {
        st = PQconnectPoll(pc->pg);

        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, pc->pool->log, 0,
                       "omnibus pg connect: poll %d, status %d",
                       (int) st, (int) PQstatus(pc->pg));

        if (st == PGRES_POLLING_FAILED) {
            ngx_omnibus_pg_lost(pc, NGX_OMNIBUS_PG_CONNECT,
                                PQerrorMessage(pc->pg));
            return;
        }

        /* libpq may have moved to another socket (TLS refused, say) */

        fd = PQsocket(pc->pg);

        if (fd != pc->c->fd) {
            ngx_omnibus_conn_unwrap(pc->c, NGX_OMNIBUS_CONN_CLOSED);

            c = ngx_omnibus_conn_wrap(fd, pc->pool->log);
            if (c == NULL) {
                pc->c = NULL;
                ngx_omnibus_pg_lost(pc, NGX_OMNIBUS_PG_CONNECT,
                                    "cannot watch the socket");
                return;
            }

            c->data = pc;
            c->read->handler = ngx_omnibus_pg_handler;
            c->write->handler = ngx_omnibus_pg_handler;
            pc->c = c;
            continue;
        }

        if (st == PGRES_POLLING_OK) {
            break;
        }

        /*
         * Edge-triggered: the writable edge that said "connected" does
         * not come again for the startup packet, nor a readable one for
         * what the kernel still holds.  A few turns at once, then the
         * next event.
         */

        if (++turns < 8
            && (st == PGRES_POLLING_WRITING
                || (ioctl(fd, FIONREAD, &n) == 0 && n > 0)))
        {
            continue;
        }

        return;
    }

    ngx_omnibus_pg_state(pc, NGX_OMNIBUS_PG_BUSY);

    if (PQenterPipelineMode(pc->pg) != 1) {
        ngx_omnibus_pg_lost(pc, NGX_OMNIBUS_PG_CONNECT,
                            PQerrorMessage(pc->pg));
        return;
    }

    /* the user's setup (schema, prepared statements) is one operation */

    pc->setup.result = ngx_omnibus_pg_setup_result;
    pc->setup.done = ngx_omnibus_pg_setup_done;
    pc->setup.data = pc;
    pc->setup.error[0] = '\0';

    sent = pc->pool->setup(pc->pool, pc->pg);
    if (sent < 0) {
        ngx_omnibus_pg_lost(pc, NGX_OMNIBUS_PG_CONNECT,
                            PQerrorMessage(pc->pg));
        return;
    }

    pc->op = &pc->setup;
    pc->pending = sent + 1;
    pc->failed = 0;

    if (PQpipelineSync(pc->pg) != 1) {
        ngx_omnibus_pg_lost(pc, NGX_OMNIBUS_PG_CONNECT,
                            PQerrorMessage(pc->pg));
        return;
    }

    ngx_omnibus_pg_flush(pc);
}


static void
ngx_omnibus_pg_setup_result(ngx_omnibus_pg_op_t *op, PGresult *res)
{
    (void) ngx_omnibus_pg_check(op, res, NGX_OMNIBUS_PG_CONNECT);
}


static void
ngx_omnibus_pg_setup_done(ngx_omnibus_pg_op_t *op, ngx_int_t rc)
{
    ngx_omnibus_pg_conn_t  *pc;
    ngx_omnibus_pg_pool_t  *pool;

    pc = op->data;
    pool = pc->pool;

    if (rc != NGX_OK) {
        ngx_omnibus_pg_lost(pc, NGX_OMNIBUS_PG_CONNECT, (char *) op->error);
        return;
    }

    if (!pool->connected) {
        ngx_log_error(NGX_LOG_NOTICE, pool->log, 0,
                      "omnibus store %V: connected", &pool->conf->target);
        pool->connected = 1;
        (void) ngx_atomic_fetch_add(pool->up, 1);
    }

    pool->down = 0;
    ngx_omnibus_reconnect_done(&pool->reconnect);

    /* logged in and set up: the server is back (a reload's new worker) */
    ngx_omnibus_breaker_close(&pool->breaker);
}


static void
ngx_omnibus_pg_start(ngx_omnibus_pg_conn_t *pc, ngx_omnibus_pg_op_t *op)
{
    ngx_int_t  sent;

    ngx_omnibus_pg_state(pc, NGX_OMNIBUS_PG_BUSY);

    pc->op = op;
    pc->failed = 0;
    op->error[0] = '\0';

    sent = op->send(op, pc->pg);

    if (sent < 0 || PQpipelineSync(pc->pg) != 1) {
        ngx_omnibus_pg_lost(pc, NGX_OMNIBUS_PG_QUERY, PQerrorMessage(pc->pg));
        return;
    }

    pc->pending = sent + 1;

    /* not cancelable: a quitting worker waits for its commits */
    pc->timer.cancelable = 0;
    /* beyond the server's statement_timeout: its answer is the clear one */
    ngx_add_timer(&pc->timer, (op->timeout ? op->timeout
                                           : pc->pool->conf->timeout)
                              + 1000);

    ngx_omnibus_pg_flush(pc);
}


static void
ngx_omnibus_pg_flush(ngx_omnibus_pg_conn_t *pc)
{
    int  rc;

    if (pc->op == NULL) {
        return;
    }

    rc = PQflush(pc->pg);

    if (rc < 0) {
        ngx_omnibus_pg_lost(pc, NGX_OMNIBUS_PG_QUERY, PQerrorMessage(pc->pg));
        return;
    }

    /* rc 1: the rest goes when the socket is writable again */
}


static void
ngx_omnibus_pg_read(ngx_omnibus_pg_conn_t *pc)
{
    int                   n;
    PGresult             *res;
    ExecStatusType        st;
    ngx_omnibus_pg_op_t  *op;

    for ( ;; ) {
        if (PQconsumeInput(pc->pg) != 1) {
            ngx_omnibus_pg_lost(pc, NGX_OMNIBUS_PG_QUERY,
                                PQerrorMessage(pc->pg));
            return;
        }

        while (pc->op && pc->pending > 0 && !PQisBusy(pc->pg)) {
            op = pc->op;
            res = PQgetResult(pc->pg);

            if (res == NULL) {
                /* the end of one statement's results */
                pc->pending--;
                continue;
            }

            st = PQresultStatus(res);

            if (st == PGRES_PIPELINE_SYNC) {
                /* results of a next operation cannot be here yet */
                PQclear(res);
                pc->pending = 0;
                ngx_omnibus_pg_finish(pc);
                return;
            }

            if (st == PGRES_FATAL_ERROR || st == PGRES_PIPELINE_ABORTED
                || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR)
            {
                pc->failed = 1;
            }

            op->result(op, res);
            PQclear(res);
        }

        if (pc->op == NULL && PQisBusy(pc->pg) == 0) {
            /* idle: a notice, or the server going away */
            if (PQstatus(pc->pg) == CONNECTION_BAD) {
                ngx_omnibus_pg_lost(pc, NGX_OMNIBUS_PG_CONNECT,
                                    "the server closed the connection");
                return;
            }
        }

        if (ioctl(pc->c->fd, FIONREAD, &n) != 0 || n == 0) {
            break;
        }
    }

    /* a closed idle connection reads as end of file */

    if (pc->op == NULL && PQstatus(pc->pg) == CONNECTION_BAD) {
        ngx_omnibus_pg_lost(pc, NGX_OMNIBUS_PG_CONNECT,
                            "the server closed the connection");
    }
}


/* the sync is in: the operation is over, the connection free again */

static void
ngx_omnibus_pg_finish(ngx_omnibus_pg_conn_t *pc)
{
    ngx_queue_t            *q;
    ngx_omnibus_pg_op_t    *op, *next;
    ngx_omnibus_pg_pool_t  *pool;

    op = pc->op;
    pool = pc->pool;

    pc->op = NULL;

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    pc->timer.cancelable = 1;

    if (pc->failed && op->error[0] == '\0') {
        op->reason = NGX_OMNIBUS_PG_QUERY;
        (void) ngx_cpystrn(op->error, (u_char *) "a statement failed",
                           sizeof(op->error));
    }

    ngx_omnibus_pg_state(pc, NGX_OMNIBUS_PG_IDLE);

    if (pc->opening) {
        pc->opening = 0;
        pool->opening--;
    }

    /* done() may run more operations: the connection is back first */

    if (op != &pc->setup
        && ((pool->nconns > pool->conf->size
             && ngx_queue_empty(&pool->waiting))
            || ngx_current_msec - pc->born > pool->conf->recycle))
    {
        ngx_omnibus_pg_free(pc);
        pc = NULL;

    } else {
        ngx_queue_insert_tail(&pool->idle, &pc->queue);
    }

    op->done(op, op->error[0] ? NGX_ERROR : NGX_OK);

    /* work that waited for a connection */

    while (!ngx_queue_empty(&pool->waiting) && !ngx_queue_empty(&pool->idle))
    {
        q = ngx_queue_head(&pool->waiting);
        ngx_queue_remove(q);
        next = ngx_queue_data(q, ngx_omnibus_pg_op_t, queue);

        q = ngx_queue_head(&pool->idle);
        ngx_queue_remove(q);

        ngx_omnibus_pg_start(ngx_queue_data(q, ngx_omnibus_pg_conn_t, queue),
                             next);
    }

    if (pool->waited.timer_set) {
        ngx_del_timer(&pool->waited);
    }

    if (!ngx_queue_empty(&pool->waiting)) {
        ngx_add_timer(&pool->waited, pool->conf->timeout);
    }

    if (pool->changed) {
        pool->changed(pool);
    }
}


static void
ngx_omnibus_pg_timeout(ngx_event_t *ev)
{
    ngx_omnibus_pg_conn_t  *pc;

    pc = ev->data;

    ngx_omnibus_pg_lost(pc, pc->state == NGX_OMNIBUS_PG_CONNECTING
                            ? NGX_OMNIBUS_PG_CONNECT
                            : NGX_OMNIBUS_PG_TIMEOUT,
                        "no answer within the timeout");
}


/*
 * A connection is lost, or never was: its operation fails, and with the
 * last connection gone the pool is down until a reconnect succeeds.
 */

static void
ngx_omnibus_pg_lost(ngx_omnibus_pg_conn_t *pc, ngx_uint_t reason,
    const char *why)
{
    size_t                  len;
    ngx_uint_t              connecting;
    ngx_omnibus_pg_op_t    *op;
    ngx_omnibus_pg_pool_t  *pool;
    u_char                  msg[160];

    pool = pc->pool;
    op = (pc->op == &pc->setup) ? NULL : pc->op;
    connecting = pc->opening;

    /* libpq's messages end with a newline; the log adds its own */

    len = ngx_cpystrn(msg, (u_char *) why, sizeof(msg)) - msg;

    while (len && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) {
        msg[--len] = '\0';
    }

    if (!pool->closing) {
        ngx_log_error(NGX_LOG_ERR, pool->log, 0,
                      "omnibus store %V: %s: %s", &pool->conf->target,
                      connecting ? "cannot connect" : "connection lost", msg);
    }

    if (pc->state == NGX_OMNIBUS_PG_IDLE) {
        ngx_queue_remove(&pc->queue);
    }

    if (connecting) {
        pc->opening = 0;
        pool->opening--;

        if (!pool->closing) {
            (void) ngx_atomic_fetch_add(&pool->errors[NGX_OMNIBUS_PG_CONNECT],
                                        1);
        }
    }

    pc->op = NULL;
    ngx_omnibus_pg_free(pc);

    if (op) {
        op->reason = reason;
        (void) ngx_cpystrn(op->error, msg, sizeof(op->error));
        op->done(op, NGX_ERROR);
    }

    if (pool->closing) {
        return;
    }

    /*
     * An extra connection that could not be had (max_connections, say)
     * only holds back the next extra one while others serve; with none
     * left set up, the pool is down and reconnects behind the breaker.
     */

    if (pool->nconns > pool->opening) {
        if (connecting) {
            pool->extra_after = ngx_current_msec + 1000;
        }

    } else if (connecting || pool->nconns == 0) {
        pool->down = 1;

        if (pool->connected) {
            pool->connected = 0;
            (void) ngx_atomic_fetch_add(pool->up, -1);
        }

        (void) ngx_omnibus_reconnect_later(&pool->reconnect);
    }

    if (pool->nconns == 0) {
        ngx_omnibus_pg_fail_waiting(pool, reason, (char *) msg);
    }

    if (pool->changed) {
        pool->changed(pool);
    }
}


/* no connection was free for a whole timeout: the work fails */

static void
ngx_omnibus_pg_waited(ngx_event_t *ev)
{
    ngx_omnibus_pg_fail_waiting(ev->data, NGX_OMNIBUS_PG_TIMEOUT,
                                "no connection within the timeout");
}


static void
ngx_omnibus_pg_fail_waiting(ngx_omnibus_pg_pool_t *pool, ngx_uint_t reason,
    const char *why)
{
    ngx_queue_t          *q;
    ngx_omnibus_pg_op_t  *op;

    while (!ngx_queue_empty(&pool->waiting)) {
        q = ngx_queue_head(&pool->waiting);
        ngx_queue_remove(q);
        op = ngx_queue_data(q, ngx_omnibus_pg_op_t, queue);

        op->reason = reason;
        (void) ngx_cpystrn(op->error, (u_char *) why, sizeof(op->error));
        op->done(op, NGX_ERROR);
    }

    if (pool->waited.timer_set) {
        ngx_del_timer(&pool->waited);
    }
}


static void
ngx_omnibus_pg_free(ngx_omnibus_pg_conn_t *pc)
{
    ngx_omnibus_pg_pool_t  *pool;

    pool = pc->pool;

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    (void) ngx_atomic_fetch_add(&pool->states[pc->state], -1);

    ngx_queue_remove(&pc->link);
    pool->nconns--;

    /* libpq closes its socket itself, at once when the server ends it */

    if (pc->c) {
        ngx_omnibus_conn_unwrap(pc->c, PQsocket(pc->pg) == pc->c->fd
                                       ? NGX_OMNIBUS_CONN_KEEP
                                       : NGX_OMNIBUS_CONN_CLOSED);
    }

    PQfinish(pc->pg);
    ngx_free(pc);
}


static void
ngx_omnibus_pg_state(ngx_omnibus_pg_conn_t *pc, ngx_uint_t state)
{
    (void) ngx_atomic_fetch_add(&pc->pool->states[pc->state], -1);
    (void) ngx_atomic_fetch_add(&pc->pool->states[state], 1);
    pc->state = state;
}
