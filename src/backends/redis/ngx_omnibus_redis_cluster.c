
/*
 * omnibus_redis: the directive, and what a publish asks of Redis.  An
 * idempotency identity is claimed with one SET NX GET (the first holder's
 * id comes back to a duplicate); a rate limit is a sorted set of recent
 * admissions per key, trimmed and counted by a script with the server's
 * clock, so N per window holds across pods whatever theirs say.  What
 * Redis cannot answer now, the pod answers alone, counted.
 */


#include <ngx_omnibus_redis.h>


static ngx_int_t ngx_omnibus_redis_claim(ngx_omnibus_zone_t *zone,
    u_char *identity, u_char *id, ngx_msec_t pending,
    ngx_omnibus_cluster_wait_t *wait);
static void ngx_omnibus_redis_claimed(ngx_omnibus_redis_conn_t *rc,
    redisReply *reply, void *data);
static void ngx_omnibus_redis_confirm(ngx_omnibus_zone_t *zone,
    u_char *identity, u_char *id);
static void ngx_omnibus_redis_confirmed(ngx_omnibus_redis_conn_t *rc,
    redisReply *reply, void *data);
static void ngx_omnibus_redis_unclaim(ngx_omnibus_zone_t *zone,
    u_char *identity, u_char *id);
static void ngx_omnibus_redis_settle(ngx_omnibus_zone_t *zone,
    ngx_omnibus_redis_script_e script, u_char *identity, u_char *id,
    ngx_omnibus_redis_reply_pt handler, const char *what);
static ngx_int_t ngx_omnibus_redis_limit(ngx_omnibus_zone_t *zone,
    ngx_omnibus_rate_t *rate, ngx_str_t *key,
    ngx_omnibus_cluster_wait_t *wait);
static void ngx_omnibus_redis_limited(ngx_omnibus_redis_conn_t *rc,
    redisReply *reply, void *data);
static void ngx_omnibus_redis_detach(ngx_omnibus_cluster_wait_t *wait);
static void ngx_omnibus_redis_ready(ngx_omnibus_redis_conn_t *rc);


char *
ngx_omnibus_redis_parse(ngx_conf_t *cf, ngx_omnibus_zone_t *zone,
    ngx_str_t *value, ngx_uint_t n)
{
    char                 *rv;
    u_char               *p, *last, *at, pw[1024];
    size_t                len;
    ngx_int_t             num;
    ngx_str_t             v, file, prefix;
    ngx_url_t             u;
    ngx_uint_t            i, on, feature;
    ngx_omnibus_redis_t  *rd;

    if (zone->cluster) {
        return "is duplicate: the zone has a Redis already";
    }

    if (n == 0) {
        return "needs a redis:// URL";
    }

    rd = ngx_pcalloc(cf->pool, sizeof(ngx_omnibus_redis_t));
    if (rd == NULL) {
        return NGX_CONF_ERROR;
    }

    rd->zone = zone;
    rd->iface.data = rd;
    rd->iface.features = (1 << NGX_OMNIBUS_CLUSTER_DEDUP)
                         | (1 << NGX_OMNIBUS_CLUSTER_LIMIT)
                         | (1 << NGX_OMNIBUS_CLUSTER_FANOUT);
    rd->timeout = 1000;
    rd->lock_ttl = 10000;
    rd->block = 5000;
    rd->stream_max = 100000;
    rd->outbox_max = 100000;
    rd->breaker_conf.failures = 5;
    rd->breaker_conf.timeout = 60000;
    rd->breaker_conf.successes = 3;
    ngx_str_set(&prefix, "omnibus:");

    /* redis://[USER@]HOST[:PORT][/DB]: the password comes from a file */

    rd->url = value[0];
    p = value[0].data;
    last = p + value[0].len;

    if (value[0].len <= 8 || ngx_strncmp(p, "redis://", 8) != 0) {
        return "needs a redis://HOST[:PORT][/DB] URL";
    }

    p += 8;

    at = ngx_strlchr(p, last, '@');

    if (at) {
        if (ngx_strlchr(p, at, ':')) {
            return "takes no password in its URL: use password_file=";
        }

        rd->user.data = p;
        rd->user.len = at - p;
        p = at + 1;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url.data = p;
    u.url.len = last - p;
    u.default_port = 6379;
    u.uri_part = 1;

    /* resolved now: hiredis would resolve a name blocking */

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "omnibus_redis: \"%V\": %s", &value[0],
                           u.err ? u.err : "the host does not resolve");
        return NGX_CONF_ERROR;
    }

    if (u.uri.len > 1) {
        num = ngx_atoi(u.uri.data + 1, u.uri.len - 1);
        if (num == NGX_ERROR || num > 65535) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "omnibus_redis: \"%V\": the database is a "
                               "number", &value[0]);
            return NGX_CONF_ERROR;
        }

        rd->db = num;
    }

    rd->host[ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen,
                           rd->host, NGX_SOCKADDR_STRLEN, 0)] = '\0';
    rd->port = ngx_inet_get_port(u.addrs[0].sockaddr);

    for (i = 1; i < n; i++) {
        v = value[i];

        if (ngx_strncmp(v.data, "dedup=", 6) == 0
            || ngx_strncmp(v.data, "rate_limit=", 11) == 0
            || ngx_strncmp(v.data, "fanout=", 7) == 0)
        {
            p = ngx_strlchr(v.data, v.data + v.len, '=') + 1;

            if (ngx_strcmp(p, "on") == 0) {
                on = 1;

            } else if (ngx_strcmp(p, "off") == 0) {
                on = 0;

            } else {
                goto invalid;
            }

            feature = (v.data[0] == 'd') ? NGX_OMNIBUS_CLUSTER_DEDUP
                      : (v.data[0] == 'r') ? NGX_OMNIBUS_CLUSTER_LIMIT
                      : NGX_OMNIBUS_CLUSTER_FANOUT;

            if (on) {
                rd->iface.features |= 1 << feature;

            } else {
                rd->iface.features &= ~(1 << feature);
            }

            continue;
        }

        if (ngx_strncmp(v.data, "timeout=", 8) == 0
            || ngx_strncmp(v.data, "lock=", 5) == 0)
        {
            len = (v.data[0] == 't') ? 8 : 5;
            num = ngx_parse_time(&(ngx_str_t) { v.len - len, v.data + len },
                                 0);
            if (num == NGX_ERROR || num == 0) {
                goto invalid;
            }

            if (v.data[0] == 't') {
                rd->timeout = num;

            } else if (num < 300) {
                goto invalid;

            } else {
                rd->lock_ttl = num;
            }

            continue;
        }

        if (ngx_strncmp(v.data, "stream=", 7) == 0) {
            num = ngx_atoi(v.data + 7, v.len - 7);
            if (num < 100 || num > 100000000) {
                goto invalid;
            }

            rd->stream_max = num;
            continue;
        }

        if (ngx_strncmp(v.data, "prefix=", 7) == 0) {
            prefix.data = v.data + 7;
            prefix.len = v.len - 7;

            for (p = prefix.data; p < prefix.data + prefix.len; p++) {
                if (*p <= ' ' || *p >= 0x7f) {
                    goto invalid;
                }
            }

            continue;
        }

        if (ngx_strncmp(v.data, "breaker=", 8) == 0) {
            v.data += 8;
            v.len -= 8;

            if (ngx_omnibus_breaker_parse(&v, &rd->breaker_conf) != NGX_OK) {
                v = value[i];
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(v.data, "password_file=", 14) == 0) {
            file.len = v.len - 14;
            file.data = v.data + 14;

            rv = ngx_omnibus_conf_secret(cf, "omnibus_redis", &file, pw,
                                         sizeof(pw), &len);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            rd->password.data = ngx_pnalloc(cf->pool, len + 1);
            if (rd->password.data == NULL) {
                return NGX_CONF_ERROR;
            }

            rd->password.len = len;
            *ngx_cpymem(rd->password.data, pw, len) = '\0';
            ngx_explicit_memzero(pw, sizeof(pw));

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "omnibus_redis: unknown parameter \"%V\" (known: "
                           "password_file, prefix, timeout, breaker, dedup, "
                           "rate_limit, fanout, lock, stream)", &v);
        return NGX_CONF_ERROR;
    }

    /* every key of the zone under "<prefix><zone>:", in 512-byte buffers */

    if (prefix.len + zone->name.len > 256) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "omnibus_redis: the prefix and the zone's name "
                           "together are longer than 256 bytes");
        return NGX_CONF_ERROR;
    }

    rd->prefix.len = prefix.len + zone->name.len + 1;
    rd->prefix.data = ngx_pnalloc(cf->pool, rd->prefix.len);
    if (rd->prefix.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf(rd->prefix.data, "%V%V:", &prefix, &zone->name);

    rd->iface.claim = ngx_omnibus_redis_claim;
    rd->iface.confirm = ngx_omnibus_redis_confirm;
    rd->iface.unclaim = ngx_omnibus_redis_unclaim;
    rd->iface.limit = ngx_omnibus_redis_limit;
    rd->iface.detach = ngx_omnibus_redis_detach;
    rd->iface.relay = ngx_omnibus_redis_relay;

    zone->cluster = &rd->iface;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "omnibus_redis: invalid \"%V\"", &v);
    return NGX_CONF_ERROR;
}


ngx_int_t
ngx_omnibus_redis_init_process(ngx_omnibus_zone_t *zone, ngx_str_t *node,
    ngx_cycle_t *cycle)
{
    ngx_omnibus_redis_t         *rd;
    ngx_omnibus_cluster_proc_t  *proc;

    if (zone->cluster == NULL) {
        return NGX_OK;
    }

    rd = zone->cluster->data;

    rd->node = *node;
    rd->log = cycle->log;

    rd->breaker.conf = rd->breaker_conf;
    rd->breaker.sh = &zone->sh->cluster.breaker;
    rd->breaker.shpool = zone->shpool;
    rd->breaker.kind = "redis";
    rd->breaker.name = &zone->name;
    rd->breaker.log = cycle->log;

    ngx_queue_init(&rd->free);

    proc = &zone->sh->cluster.procs[ngx_worker % NGX_OMNIBUS_HOLD_SLOTS];
    proc->pid = ngx_pid;
    proc->up = 0;

    ngx_omnibus_redis_conn_init(rd, &rd->cmd, "commands", rd->timeout);
    rd->cmd.ready = ngx_omnibus_redis_ready;

    if (ngx_omnibus_redis_fanout_init(rd, cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_omnibus_redis_lock_init(rd);

    ngx_omnibus_redis_connect(&rd->cmd);

    return NGX_OK;
}


void
ngx_omnibus_redis_exit_process(ngx_omnibus_zone_t *zone)
{
    ngx_omnibus_redis_t         *rd;
    ngx_omnibus_cluster_proc_t  *proc;

    if (zone->cluster == NULL) {
        return;
    }

    rd = zone->cluster->data;

    ngx_omnibus_redis_lock_exit(rd);
    ngx_omnibus_redis_fanout_exit(rd);

    ngx_omnibus_redis_close(&rd->cmd);

    if (rd->stream.rd) {
        ngx_omnibus_redis_close(&rd->stream);    /* this worker reads */
    }

    proc = &zone->sh->cluster.procs[ngx_worker % NGX_OMNIBUS_HOLD_SLOTS];

    if (proc->pid == ngx_pid) {
        proc->up = 0;
    }
}


static void
ngx_omnibus_redis_ready(ngx_omnibus_redis_conn_t *rc)
{
    ngx_omnibus_redis_fanout_ready(rc->rd);
}


/*
 * The key holds the first message's id, or, while that message is only
 * provisionally accepted, "~" and its id for pending ms.
 */

static ngx_int_t
ngx_omnibus_redis_claim(ngx_omnibus_zone_t *zone, u_char *identity,
    u_char *id, ngx_msec_t pending, ngx_omnibus_cluster_wait_t *wait)
{
    u_char                ttl[NGX_INT_T_LEN], key[512];
    u_char                value[1 + NGX_OMNIBUS_ID_LEN];
    size_t                len[7];
    const char           *argv[7];
    ngx_omnibus_redis_t  *rd;

    rd = zone->cluster->data;

    value[0] = '~';
    ngx_memcpy(value + 1, id, NGX_OMNIBUS_ID_LEN);

    argv[0] = "SET";
    len[0] = 3;
    argv[1] = (char *) key;
    len[1] = ngx_omnibus_redis_key(rd, key, "d:", identity);
    argv[2] = (char *) (pending ? value : value + 1);
    len[2] = NGX_OMNIBUS_ID_LEN + (pending ? 1 : 0);
    argv[3] = "NX";
    len[3] = 2;
    argv[4] = "GET";
    len[4] = 3;
    argv[5] = pending ? "PX" : "EX";
    len[5] = 2;
    argv[6] = (char *) ttl;

    /* it runs from now: the claim's own round trip is part of the wait */
    len[6] = (pending ? ngx_sprintf(ttl, "%M", pending + rd->timeout)
                      : ngx_sprintf(ttl, "%T", zone->dedup_ttl))
             - ttl;

    if (ngx_omnibus_redis_send(&rd->cmd, ngx_omnibus_redis_claimed, wait,
                               7, argv, len, &wait->cmd)
        != NGX_OK)
    {
        ngx_omnibus_redis_fallback(rd, NGX_OMNIBUS_CLUSTER_DEDUP);
        return NGX_DECLINED;
    }

    return NGX_AGAIN;
}


static void
ngx_omnibus_redis_claimed(ngx_omnibus_redis_conn_t *rc, redisReply *reply,
    void *data)
{
    ngx_omnibus_cluster_wait_t  *wait = data;
    ngx_omnibus_cluster_sh_t    *sh;

    sh = &rc->rd->zone->sh->cluster;
    wait->cmd = NULL;

    if (reply && reply->type == REDIS_REPLY_NIL) {
        (void) ngx_atomic_fetch_add(&sh->claimed, 1);
        wait->rc = NGX_OK;

    } else if (reply && reply->type == REDIS_REPLY_STRING
               && reply->len == NGX_OMNIBUS_ID_LEN)
    {
        (void) ngx_atomic_fetch_add(&sh->duplicates, 1);
        ngx_memcpy(wait->first, reply->str, NGX_OMNIBUS_ID_LEN);
        wait->rc = NGX_DECLINED;

    } else if (reply && reply->type == REDIS_REPLY_STRING
               && reply->len == 1 + NGX_OMNIBUS_ID_LEN
               && reply->str[0] == '~')
    {
        (void) ngx_atomic_fetch_add(&sh->pending, 1);
        wait->rc = NGX_BUSY;

    } else {
        if (reply) {
            /* Redis before 7.0 has no SET NX GET; a replica refuses it */
            ngx_omnibus_redis_refused(rc, "SET NX GET", reply,
                                      reply->type == REDIS_REPLY_ERROR
                                      && ngx_strncmp(reply->str, "READONLY",
                                                     8) == 0);
        }

        ngx_omnibus_redis_fallback(rc->rd, NGX_OMNIBUS_CLUSTER_DEDUP);
        wait->rc = NGX_ERROR;
    }

    wait->handler(wait);
}


/*
 * Confirm and unclaim go after the claim on the same connection, so after
 * it in Redis too: they change the key only if the claim made it ours.
 */

static void
ngx_omnibus_redis_confirm(ngx_omnibus_zone_t *zone, u_char *identity,
    u_char *id)
{
    /* if it cannot be sent, the claim lapses: a retry is accepted again */
    ngx_omnibus_redis_settle(zone, NGX_OMNIBUS_REDIS_CONFIRM, identity, id,
                             ngx_omnibus_redis_confirmed, "confirm");
}


static void
ngx_omnibus_redis_confirmed(ngx_omnibus_redis_conn_t *rc, redisReply *reply,
    void *data)
{
    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        /* the claim lapsed and a retry took the key: both messages go on */
        ngx_log_error(NGX_LOG_WARN, rc->rd->log, 0,
                      "omnibus_redis \"%V\": an idempotency key was claimed "
                      "again before its first message was committed, both "
                      "are accepted", &rc->rd->zone->name);
    }
}


static void
ngx_omnibus_redis_unclaim(ngx_omnibus_zone_t *zone, u_char *identity,
    u_char *id)
{
    /* if it cannot be sent, the key stays: a retry is a duplicate */
    ngx_omnibus_redis_settle(zone, NGX_OMNIBUS_REDIS_UNCLAIM, identity, id,
                             NULL, "free");
}


/* the script on identity's key, with the id and the dedup ttl (s) */

static void
ngx_omnibus_redis_settle(ngx_omnibus_zone_t *zone,
    ngx_omnibus_redis_script_e script, u_char *identity, u_char *id,
    ngx_omnibus_redis_reply_pt handler, const char *what)
{
    u_char                key[512], ttl[NGX_INT_T_LEN];
    size_t                len[2];
    const char           *argv[2];
    ngx_omnibus_redis_t  *rd;

    rd = zone->cluster->data;

    argv[0] = (char *) id;
    len[0] = NGX_OMNIBUS_ID_LEN;
    argv[1] = (char *) ttl;
    len[1] = ngx_sprintf(ttl, "%T", zone->dedup_ttl) - ttl;

    if (ngx_omnibus_redis_script(&rd->cmd, handler, NULL, script, key,
                                 ngx_omnibus_redis_key(rd, key, "d:",
                                                       identity),
                                 2, argv, len, NULL)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "omnibus_redis \"%V\": cannot %s the idempotency key "
                      "of %*s", &zone->name, what,
                      (size_t) NGX_OMNIBUS_ID_LEN, id);
    }
}


static ngx_int_t
ngx_omnibus_redis_limit(ngx_omnibus_zone_t *zone, ngx_omnibus_rate_t *rate,
    ngx_str_t *key, ngx_omnibus_cluster_wait_t *wait)
{
    u_char                window[NGX_INT_T_LEN], count[NGX_INT_T_LEN];
    u_char                member[NGX_INT_T_LEN * 3 + 256], name[512];
    u_char                identity[NGX_OMNIBUS_IDENTITY_LEN];
    size_t                len[3];
    const char           *argv[3];
    ngx_omnibus_redis_t  *rd;

    rd = zone->cluster->data;

    ngx_omnibus_limit_identity(rate, key, identity);

    argv[0] = (char *) window;
    len[0] = ngx_sprintf(window, "%M", rate->window) - window;
    argv[1] = (char *) count;
    len[1] = ngx_sprintf(count, "%ui", rate->rate) - count;

    /* each admission is a member of its own */
    argv[2] = (char *) member;
    len[2] = ngx_snprintf(member, sizeof(member), "%V/%P/%uL", &rd->node,
                          ngx_pid, ++rd->counter)
             - member;

    if (ngx_omnibus_redis_script(&rd->cmd, ngx_omnibus_redis_limited, wait,
                                 NGX_OMNIBUS_REDIS_LIMIT, name,
                                 ngx_omnibus_redis_key(rd, name, "l:",
                                                       identity),
                                 3, argv, len, &wait->cmd)
        != NGX_OK)
    {
        ngx_omnibus_redis_fallback(rd, NGX_OMNIBUS_CLUSTER_LIMIT);
        return NGX_DECLINED;
    }

    return NGX_AGAIN;
}


static void
ngx_omnibus_redis_limited(ngx_omnibus_redis_conn_t *rc, redisReply *reply,
    void *data)
{
    ngx_omnibus_cluster_wait_t  *wait = data;

    wait->cmd = NULL;

    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        if (reply->integer == 0) {
            wait->rc = NGX_OK;

        } else {
            (void) ngx_atomic_fetch_add(&rc->rd->zone->sh->cluster.limited,
                                        1);
            wait->rc = NGX_DECLINED;
            wait->retry_after = (reply->integer + 999) / 1000;
        }

    } else {
        if (reply) {
            ngx_omnibus_redis_refused(rc, "rate limit script", reply,
                                      reply->type == REDIS_REPLY_ERROR
                                      && ngx_strncmp(reply->str, "READONLY",
                                                     8) == 0);
        }

        ngx_omnibus_redis_fallback(rc->rd, NGX_OMNIBUS_CLUSTER_LIMIT);
        wait->rc = NGX_ERROR;
    }

    wait->handler(wait);
}


static void
ngx_omnibus_redis_detach(ngx_omnibus_cluster_wait_t *wait)
{
    if (wait->cmd) {
        ngx_omnibus_redis_forget(wait->cmd);
        wait->cmd = NULL;
    }
}
