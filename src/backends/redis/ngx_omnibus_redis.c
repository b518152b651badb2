
/*
 * A hiredis connection on the NGINX event loop.  Our adapter wraps the
 * socket hiredis opened in an ngx_connection_t, edge-triggered like
 * every NGINX socket: a readable edge is drained to the end (hiredis
 * reads 16 KiB a call), and commands queued during one event loop turn
 * leave in one write.  hiredis has no timeouts: each command gets a
 * deadline, one timer watches the oldest, and a connection that misses
 * one is dropped, which answers every command in flight with NULL.
 * Connections are dropped from timers and posted events only, never
 * from inside a hiredis callback, and come back after a backoff behind
 * the breaker.  hiredis closes the socket itself.
 */


#include <ngx_omnibus_redis.h>
#include <sys/ioctl.h>


static void ngx_omnibus_redis_reconnect(ngx_event_t *ev);
static void ngx_omnibus_redis_kill(ngx_event_t *ev);
static void ngx_omnibus_redis_expire(ngx_event_t *ev);
static void ngx_omnibus_redis_read(ngx_event_t *rev);
static void ngx_omnibus_redis_write(ngx_event_t *wev);
static void ngx_omnibus_redis_add_write(void *data);
static void ngx_omnibus_redis_noop(void *data);
static void ngx_omnibus_redis_cleanup(void *data);
static void ngx_omnibus_redis_connected(const redisAsyncContext *ac,
    int status);
static void ngx_omnibus_redis_setup(ngx_omnibus_redis_conn_t *rc);
static ngx_int_t ngx_omnibus_redis_setup_send(ngx_omnibus_redis_conn_t *rc,
    void *data, int argc, const char **argv, const size_t *argvlen);
static ngx_int_t ngx_omnibus_redis_queue(ngx_omnibus_redis_conn_t *rc,
    ngx_omnibus_redis_reply_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen, void **cmdp);
static void ngx_omnibus_redis_setup_reply(ngx_omnibus_redis_conn_t *rc,
    redisReply *reply, void *data);
static void ngx_omnibus_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_omnibus_redis_drop(ngx_omnibus_redis_conn_t *rc);
static void ngx_omnibus_redis_arm(ngx_omnibus_redis_conn_t *rc);
static void ngx_omnibus_redis_mark(ngx_omnibus_redis_conn_t *rc,
    ngx_uint_t up);


/* what a setup reply answers, when it is not a script's SHA-1 */
static u_char  ngx_omnibus_redis_auth[] = "AUTH";
static u_char  ngx_omnibus_redis_select[] = "SELECT";


/*
 * The scripts every connection loads at setup, for EVALSHA.
 *
 * LIMIT: KEYS[1] the key's admissions; ARGV window (ms), rate, a unique
 * member.  0: admitted; otherwise the ms until the oldest leaves.
 */

const char  *ngx_omnibus_redis_scripts[NGX_OMNIBUS_REDIS_SCRIPTS] = {

    "local t = redis.call('TIME') "
    "local now = t[1] * 1000 + math.floor(t[2] / 1000) "
    "local w = tonumber(ARGV[1]) "
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - w) "
    "if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then "
    "  redis.call('ZADD', KEYS[1], now, ARGV[3]) "
    "  redis.call('PEXPIRE', KEYS[1], w) "
    "  return 0 "
    "end "
    "local o = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES') "
    "return math.max(w - (now - tonumber(o[2])), 1)",

    /* UNCLAIM: deletes KEYS[1] if it still holds ARGV[1], or its claim */

    "local v = redis.call('GET', KEYS[1]) "
    "if v == ARGV[1] or v == '~' .. ARGV[1] then "
    "  return redis.call('DEL', KEYS[1]) "
    "end "
    "return 0",

    /*
     * CONFIRM: the provisional claim of KEYS[1] by ARGV[1] ("~" and the
     * id) becomes the id for ARGV[2] s; expired, it is taken again: the
     * message is durable, a retry must learn of it
     */

    "local v = redis.call('GET', KEYS[1]) "
    "if v == '~' .. ARGV[1] or not v then "
    "  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) "
    "  return 1 "
    "end "
    "return 0",

    /* RENEW: KEYS[1] held by ARGV[1] lives ARGV[2] ms more */

    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "  return redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
    "end "
    "return 0"
};


void
ngx_omnibus_redis_conn_init(ngx_omnibus_redis_t *rd,
    ngx_omnibus_redis_conn_t *rc, const char *role, ngx_msec_t timeout)
{
    rc->rd = rd;
    rc->role = role;
    rc->timeout = timeout;
    rc->state = NGX_OMNIBUS_REDIS_DOWN;

    ngx_queue_init(&rc->inflight);

    rc->timer.handler = ngx_omnibus_redis_expire;
    rc->timer.data = rc;
    rc->timer.log = rd->log;

    /*
     * A quitting worker waits for the answers to its commands (publishes
     * wait on them, held), at most timeout; not for a blocked stream read.
     */
    rc->timer.cancelable = (rc == &rd->stream);

    rc->kill.handler = ngx_omnibus_redis_kill;
    rc->kill.data = rc;
    rc->kill.log = rd->log;

    ngx_omnibus_reconnect_init(&rc->reconnect, 100, 5000, &rd->breaker,
                               ngx_omnibus_redis_reconnect, rc, rd->log);
}


void
ngx_omnibus_redis_connect(ngx_omnibus_redis_conn_t *rc)
{
    ngx_omnibus_redis_t  *rd;
    redisAsyncContext    *ac;
    ngx_connection_t     *c;

    rd = rc->rd;

    if (rc->ac || rc->closing || ngx_exiting || ngx_terminate) {
        return;
    }

    /* the host is numeric: hiredis resolves names blocking */

    ac = redisAsyncConnect((char *) rd->host, rd->port);

    if (ac == NULL || ac->err) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "omnibus_redis \"%V\": cannot connect to %V: %s",
                      &rd->zone->name, &rd->url,
                      ac ? ac->errstr : "out of memory");

        if (ac) {
            redisAsyncFree(ac);
        }

        ngx_omnibus_redis_error(rd, NGX_OMNIBUS_REDIS_ERR_CONNECT);
        (void) ngx_omnibus_reconnect_later(&rc->reconnect);
        return;
    }

    c = ngx_omnibus_conn_wrap(ac->c.fd, rd->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        (void) ngx_omnibus_reconnect_later(&rc->reconnect);
        return;
    }

    c->data = rc;
    c->read->handler = ngx_omnibus_redis_read;
    c->write->handler = ngx_omnibus_redis_write;

    rc->ac = ac;
    rc->c = c;
    rc->state = NGX_OMNIBUS_REDIS_CONNECTING;

    ac->data = rc;

    /* the hooks first: setting the connect callback asks for a write */

    ac->ev.data = rc;
    ac->ev.addRead = ngx_omnibus_redis_noop;
    ac->ev.delRead = ngx_omnibus_redis_noop;
    ac->ev.addWrite = ngx_omnibus_redis_add_write;
    ac->ev.delWrite = ngx_omnibus_redis_noop;
    ac->ev.cleanup = ngx_omnibus_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_omnibus_redis_connected);

    /* a connection that neither connects nor fails is dropped */
    ngx_add_timer(&rc->timer, rc->timeout);
}


/* exiting: the connection goes, and does not come back */

void
ngx_omnibus_redis_close(ngx_omnibus_redis_conn_t *rc)
{
    ngx_queue_t              *q;
    ngx_omnibus_redis_cmd_t  *cmd;

    rc->closing = 1;

    /* the waiters may be gone with their requests: nobody is answered */

    for (q = ngx_queue_head(&rc->inflight);
         q != ngx_queue_sentinel(&rc->inflight);
         q = ngx_queue_next(q))
    {
        cmd = ngx_queue_data(q, ngx_omnibus_redis_cmd_t, queue);
        cmd->handler = NULL;
    }

    if (rc->reconnect.timer.timer_set) {
        ngx_del_timer(&rc->reconnect.timer);
    }

    ngx_omnibus_redis_drop(rc);
}


static void
ngx_omnibus_redis_reconnect(ngx_event_t *ev)
{
    ngx_omnibus_redis_connect(ev->data);
}


/* posted from a callback: hiredis must not be freed inside one */

static void
ngx_omnibus_redis_kill(ngx_event_t *ev)
{
    ngx_omnibus_redis_drop(ev->data);
}


static void
ngx_omnibus_redis_drop(ngx_omnibus_redis_conn_t *rc)
{
    redisAsyncContext  *ac;

    if (rc->kill.posted) {
        ngx_delete_posted_event(&rc->kill);
    }

    ac = rc->ac;

    if (ac == NULL) {
        return;
    }

    rc->state = NGX_OMNIBUS_REDIS_DOWN;

    /* answers the commands in flight with NULL, then our cleanup hook */
    redisAsyncFree(ac);
}


static void
ngx_omnibus_redis_expire(ngx_event_t *ev)
{
    ngx_omnibus_redis_conn_t  *rc;
    ngx_omnibus_redis_cmd_t   *cmd;

    rc = ev->data;

    if (rc->ac == NULL) {
        return;
    }

    if (rc->state == NGX_OMNIBUS_REDIS_READY
        && !ngx_queue_empty(&rc->inflight))
    {
        cmd = ngx_queue_data(ngx_queue_head(&rc->inflight),
                             ngx_omnibus_redis_cmd_t, queue);

        if ((ngx_msec_int_t) (cmd->deadline - ngx_current_msec) > 0) {
            ngx_omnibus_redis_arm(rc);
            return;
        }
    }

    ngx_log_error(NGX_LOG_ERR, rc->rd->log, 0,
                  "omnibus_redis \"%V\": %V did not answer within %M ms "
                  "(%s connection), reconnecting",
                  &rc->rd->zone->name, &rc->rd->url, rc->timeout, rc->role);

    ngx_omnibus_redis_error(rc->rd, NGX_OMNIBUS_REDIS_ERR_TIMEOUT);
    ngx_omnibus_redis_drop(rc);
}


/* the timer follows the oldest command in flight */

static void
ngx_omnibus_redis_arm(ngx_omnibus_redis_conn_t *rc)
{
    ngx_msec_int_t            left;
    ngx_omnibus_redis_cmd_t  *cmd;

    if (ngx_queue_empty(&rc->inflight)) {
        if (rc->timer.timer_set) {
            ngx_del_timer(&rc->timer);
        }

        return;
    }

    cmd = ngx_queue_data(ngx_queue_head(&rc->inflight),
                         ngx_omnibus_redis_cmd_t, queue);

    left = cmd->deadline - ngx_current_msec;

    ngx_add_timer(&rc->timer, left > 0 ? (ngx_msec_t) left : 1);
}


static void
ngx_omnibus_redis_read(ngx_event_t *rev)
{
    int                        n;
    ngx_connection_t          *c;
    ngx_omnibus_redis_conn_t  *rc;

    c = rev->data;
    rc = c->data;

    /* edge-triggered: read until nothing is left, or the end is seen */

    for ( ;; ) {
        redisAsyncHandleRead(rc->ac);

        if (rc->c != c) {
            return;                 /* hiredis let the connection go */
        }

        if (ioctl(c->fd, FIONREAD, &n) == -1) {
            break;
        }

        if (n == 0) {
            if (!rev->pending_eof) {
                break;
            }

            rev->pending_eof = 0;   /* once more, for hiredis to see it */
        }
    }
}


static void
ngx_omnibus_redis_write(ngx_event_t *wev)
{
    ngx_connection_t          *c;
    ngx_omnibus_redis_conn_t  *rc;

    c = wev->data;
    rc = c->data;

    wev->ready = 1;

    /* hiredis asks for a write when it could not finish: not posted again */

    rc->writing = 1;
    redisAsyncHandleWrite(rc->ac);
    rc->writing = 0;

    /* what is left waits for the next writable edge */

    if (rc->c == c && rc->ac && sdslen(rc->ac->c.obuf)) {
        wev->ready = 0;
    }
}


/* a command was queued: written at the end of this event loop turn */

static void
ngx_omnibus_redis_add_write(void *data)
{
    ngx_omnibus_redis_conn_t  *rc = data;

    if (rc->c && rc->c->write->ready && !rc->c->write->posted
        && !rc->writing)
    {
        ngx_post_event(rc->c->write, &ngx_posted_events);
    }
}


static void
ngx_omnibus_redis_noop(void *data)
{
    /* the socket is in epoll for both directions from the start */
}


/* hiredis is done with the context: it closes the socket after this */

static void
ngx_omnibus_redis_cleanup(void *data)
{
    ngx_omnibus_redis_conn_t  *rc = data;

    if (rc->c) {
        ngx_omnibus_conn_unwrap(rc->c, NGX_OMNIBUS_CONN_KEEP);
        rc->c = NULL;
    }

    if (rc->timer.timer_set) {
        ngx_del_timer(&rc->timer);
    }

    if (rc->kill.posted) {
        ngx_delete_posted_event(&rc->kill);
    }

    rc->ac = NULL;
    rc->state = NGX_OMNIBUS_REDIS_DOWN;

    ngx_omnibus_redis_mark(rc, 0);

    if (rc->lost) {
        rc->lost(rc);
    }

    if (rc->closing || ngx_exiting || ngx_terminate) {
        return;
    }

    /*
     * A connection that worked is tried again soon (a restart of Redis
     * drops every worker's at once: that is one event, not a failure
     * each); one that never came up counts against the breaker.
     */

    if (rc->established) {
        rc->established = 0;
        rc->reconnect.failures = 0;

        if (rc->reconnect.timer.timer_set) {
            ngx_del_timer(&rc->reconnect.timer);
        }

        ngx_add_timer(&rc->reconnect.timer, rc->reconnect.base);
        return;
    }

    (void) ngx_omnibus_reconnect_later(&rc->reconnect);
}


static void
ngx_omnibus_redis_connected(const redisAsyncContext *ac, int status)
{
    ngx_omnibus_redis_conn_t  *rc;

    rc = ac->data;

    if (rc->timer.timer_set) {
        ngx_del_timer(&rc->timer);
    }

    if (status != REDIS_OK) {
        /* hiredis frees the context after this: our cleanup follows */
        ngx_log_error(NGX_LOG_ERR, rc->rd->log, 0,
                      "omnibus_redis \"%V\": cannot connect to %V: %s",
                      &rc->rd->zone->name, &rc->rd->url, ac->errstr);
        ngx_omnibus_redis_error(rc->rd, NGX_OMNIBUS_REDIS_ERR_CONNECT);
        return;
    }

    ngx_omnibus_redis_setup(rc);
}


/*
 * Before use: AUTH, SELECT and the scripts, pipelined; the connection is
 * ready when all have answered well.
 */

static void
ngx_omnibus_redis_setup(ngx_omnibus_redis_conn_t *rc)
{
    int                   argc;
    u_char                db[NGX_INT_T_LEN];
    size_t                len[3];
    ngx_uint_t            i;
    const char           *argv[3];
    ngx_omnibus_redis_t  *rd;

    rd = rc->rd;
    rc->state = NGX_OMNIBUS_REDIS_SETUP;
    rc->setup = 0;

    if (rd->password.len) {
        argc = 0;
        argv[argc] = "AUTH";
        len[argc++] = 4;

        if (rd->user.len) {
            argv[argc] = (char *) rd->user.data;
            len[argc++] = rd->user.len;
        }

        argv[argc] = (char *) rd->password.data;
        len[argc++] = rd->password.len;

        if (ngx_omnibus_redis_setup_send(rc, ngx_omnibus_redis_auth, argc,
                                         argv, len)
            != NGX_OK)
        {
            goto failed;
        }
    }

    if (rd->db) {
        argv[0] = "SELECT";
        len[0] = 6;
        argv[1] = (char *) db;
        len[1] = ngx_sprintf(db, "%ui", rd->db) - db;

        if (ngx_omnibus_redis_setup_send(rc, ngx_omnibus_redis_select, 2,
                                         argv, len)
            != NGX_OK)
        {
            goto failed;
        }
    }

    for (i = 0; i < NGX_OMNIBUS_REDIS_SCRIPTS; i++) {
        argv[0] = "SCRIPT";
        len[0] = 6;
        argv[1] = "LOAD";
        len[1] = 4;
        argv[2] = ngx_omnibus_redis_scripts[i];
        len[2] = ngx_strlen(argv[2]);

        if (ngx_omnibus_redis_setup_send(rc, rd->sha[i], 3, argv, len)
            != NGX_OK)
        {
            goto failed;
        }
    }

    return;

failed:

    ngx_post_event(&rc->kill, &ngx_posted_events);
}


static void
ngx_omnibus_redis_setup_reply(ngx_omnibus_redis_conn_t *rc,
    redisReply *reply, void *data)
{
    ngx_omnibus_redis_t  *rd;

    rd = rc->rd;

    if (reply == NULL || rc->state != NGX_OMNIBUS_REDIS_SETUP) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        /* a wrong password is said once per attempt, behind the backoff */
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "omnibus_redis \"%V\": %s to %V failed: %s",
                      &rd->zone->name,
                      (data == ngx_omnibus_redis_auth
                       || data == ngx_omnibus_redis_select)
                      ? (char *) data : "SCRIPT LOAD",
                      &rd->url, reply->str);

        ngx_omnibus_redis_error(rd, data == ngx_omnibus_redis_auth
                                    ? NGX_OMNIBUS_REDIS_ERR_AUTH
                                    : NGX_OMNIBUS_REDIS_ERR_REPLY);

        rc->state = NGX_OMNIBUS_REDIS_DOWN;
        ngx_post_event(&rc->kill, &ngx_posted_events);
        return;
    }

    if (data != ngx_omnibus_redis_auth && data != ngx_omnibus_redis_select) {
        /* a script's SHA-1, for EVALSHA */
        if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
            rc->state = NGX_OMNIBUS_REDIS_DOWN;
            ngx_post_event(&rc->kill, &ngx_posted_events);
            return;
        }

        ngx_memcpy(data, reply->str, 40);
        ((u_char *) data)[40] = '\0';
    }

    if (--rc->setup) {
        return;
    }

    rc->state = NGX_OMNIBUS_REDIS_READY;
    rc->established = 1;

    ngx_omnibus_reconnect_done(&rc->reconnect);

    /* in half-open or open alike: Redis answers again */
    ngx_omnibus_breaker_close(&rd->breaker);

    ngx_omnibus_redis_mark(rc, 1);

    ngx_log_error(NGX_LOG_INFO, rd->log, 0,
                  "omnibus_redis \"%V\": connected to %V (%s)",
                  &rd->zone->name, &rd->url, rc->role);

    if (rc->ready) {
        rc->ready(rc);
    }
}


/* set up, and not going away */

ngx_uint_t
ngx_omnibus_redis_usable(ngx_omnibus_redis_conn_t *rc)
{
    return rc->state == NGX_OMNIBUS_REDIS_READY;
}


/*
 * Queues a command; its handler runs with the reply, or NULL when the
 * connection goes first.  NGX_DECLINED: not connected, nothing queued.
 */

ngx_int_t
ngx_omnibus_redis_send(ngx_omnibus_redis_conn_t *rc,
    ngx_omnibus_redis_reply_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen, void **cmdp)
{
    if (rc->ac == NULL || rc->state != NGX_OMNIBUS_REDIS_READY) {
        return NGX_DECLINED;
    }

    return ngx_omnibus_redis_queue(rc, handler, data, argc, argv, argvlen,
                                   cmdp);
}


/* a setup command: the connection is ready when all have answered */

static ngx_int_t
ngx_omnibus_redis_setup_send(ngx_omnibus_redis_conn_t *rc, void *data,
    int argc, const char **argv, const size_t *argvlen)
{
    if (ngx_omnibus_redis_queue(rc, ngx_omnibus_redis_setup_reply, data,
                                argc, argv, argvlen, NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc->setup++;

    return NGX_OK;
}


static ngx_int_t
ngx_omnibus_redis_queue(ngx_omnibus_redis_conn_t *rc,
    ngx_omnibus_redis_reply_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen, void **cmdp)
{
    ngx_queue_t              *q;
    ngx_omnibus_redis_t      *rd;
    ngx_omnibus_redis_cmd_t  *cmd;

    rd = rc->rd;

    if (!ngx_queue_empty(&rd->free)) {
        q = ngx_queue_head(&rd->free);
        ngx_queue_remove(q);
        cmd = ngx_queue_data(q, ngx_omnibus_redis_cmd_t, queue);

    } else {
        cmd = ngx_alloc(sizeof(ngx_omnibus_redis_cmd_t), rd->log);
        if (cmd == NULL) {
            return NGX_ERROR;
        }
    }

    cmd->handler = handler;
    cmd->data = data;
    cmd->deadline = ngx_current_msec + rc->timeout;

    if (redisAsyncCommandArgv(rc->ac, ngx_omnibus_redis_reply, cmd, argc,
                              argv, argvlen)
        != REDIS_OK)
    {
        ngx_queue_insert_head(&rd->free, &cmd->queue);
        return NGX_DECLINED;
    }

    ngx_queue_insert_tail(&rc->inflight, &cmd->queue);

    if (!rc->timer.timer_set) {
        ngx_omnibus_redis_arm(rc);
    }

    if (cmdp) {
        *cmdp = cmd;
    }

    return NGX_OK;
}


/* "<prefix><zone>:" and name, then identity in hex if there is one */

size_t
ngx_omnibus_redis_key(ngx_omnibus_redis_t *rd, u_char *buf, const char *name,
    u_char *identity)
{
    u_char  *p;

    p = ngx_cpymem(buf, rd->prefix.data, rd->prefix.len);
    p = ngx_cpymem(p, name, ngx_strlen(name));

    if (identity) {
        p = ngx_hex_dump(p, identity, NGX_OMNIBUS_IDENTITY_LEN);
    }

    return p - buf;
}


/* EVALSHA of a script loaded at setup, on one key, with up to 4 args */

ngx_int_t
ngx_omnibus_redis_script(ngx_omnibus_redis_conn_t *rc,
    ngx_omnibus_redis_reply_pt handler, void *data,
    ngx_omnibus_redis_script_e script, u_char *key, size_t key_len,
    int n, const char **args, const size_t *args_len, void **cmdp)
{
    int          i;
    size_t       len[8];
    const char  *argv[8];

    argv[0] = "EVALSHA";
    len[0] = 7;
    argv[1] = (char *) rc->rd->sha[script];
    len[1] = 40;
    argv[2] = "1";
    len[2] = 1;
    argv[3] = (char *) key;
    len[3] = key_len;

    for (i = 0; i < n && i < 4; i++) {
        argv[4 + i] = args[i];
        len[4 + i] = args_len[i];
    }

    return ngx_omnibus_redis_send(rc, handler, data, 4 + i, argv, len, cmdp);
}


/* the waiter went away: the reply, when it comes, is dropped */

void
ngx_omnibus_redis_forget(void *p)
{
    ngx_omnibus_redis_cmd_t  *cmd = p;

    cmd->handler = NULL;
}


static void
ngx_omnibus_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                  *reply;
    ngx_omnibus_redis_conn_t    *rc;
    ngx_omnibus_redis_cmd_t     *cmd;
    ngx_omnibus_redis_reply_pt   handler;

    rc = ac->data;
    cmd = privdata;

    ngx_queue_remove(&cmd->queue);
    ngx_queue_insert_head(&rc->rd->free, &cmd->queue);

    if (r == NULL) {
        /* going away: nothing more is sent on it */
        rc->state = NGX_OMNIBUS_REDIS_DOWN;

    } else if (rc->ac) {
        ngx_omnibus_redis_arm(rc);

        /* scripts flushed from the server: loaded again on a new one */

        reply = r;

        if (reply->type == REDIS_REPLY_ERROR
            && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0
            && rc->state == NGX_OMNIBUS_REDIS_READY)
        {
            rc->state = NGX_OMNIBUS_REDIS_DOWN;
            ngx_post_event(&rc->kill, &ngx_posted_events);
        }
    }

    handler = cmd->handler;

    if (handler) {
        handler(rc, r, cmd->data);
    }
}


/*
 * A reply that is not what a command expects: said (once in a while),
 * counted, and with drop the connection goes, to start over.
 */

void
ngx_omnibus_redis_refused(ngx_omnibus_redis_conn_t *rc, const char *what,
    redisReply *reply, ngx_uint_t drop)
{
    ngx_omnibus_redis_t  *rd;

    rd = rc->rd;

    ngx_omnibus_redis_error(rd, NGX_OMNIBUS_REDIS_ERR_REPLY);

    if (ngx_time() - rd->refused_logged >= NGX_OMNIBUS_LOG_THROTTLE) {
        rd->refused_logged = ngx_time();
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "omnibus_redis \"%V\": %s: %s", &rd->zone->name, what,
                      reply->type == REDIS_REPLY_ERROR ? reply->str
                                                       : "unexpected reply");
    }

    if (drop && rc->state == NGX_OMNIBUS_REDIS_READY) {
        rc->state = NGX_OMNIBUS_REDIS_DOWN;
        ngx_post_event(&rc->kill, &ngx_posted_events);
    }
}


/* this worker's connections as the zone shows them */

static void
ngx_omnibus_redis_mark(ngx_omnibus_redis_conn_t *rc, ngx_uint_t up)
{
    ngx_uint_t                   bit;
    ngx_omnibus_cluster_proc_t  *proc;

    proc = &rc->rd->zone->sh->cluster.procs[ngx_worker
                                            % NGX_OMNIBUS_HOLD_SLOTS];

    if (proc->pid != ngx_pid) {
        return;                     /* the slot is a newer worker's now */
    }

    bit = (rc == &rc->rd->stream) ? 2 : 1;

    if (up) {
        proc->up |= bit;

    } else {
        proc->up &= ~bit;
    }
}


void
ngx_omnibus_redis_error(ngx_omnibus_redis_t *rd,
    ngx_omnibus_redis_reason_e reason)
{
    (void) ngx_atomic_fetch_add(&rd->zone->sh->cluster.errors[reason], 1);
}


void
ngx_omnibus_redis_fallback(ngx_omnibus_redis_t *rd,
    ngx_omnibus_cluster_feature_e feature)
{
    (void) ngx_atomic_fetch_add(&rd->zone->sh->cluster.fallbacks[feature],
                                1);
}
