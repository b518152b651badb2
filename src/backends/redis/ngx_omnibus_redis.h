
/*
 * Redis: one bus across pods (omnibus_redis).  A zone's client keeps two
 * hiredis connections per worker on the NGINX event loop: one for
 * pipelined commands (claims, limits, relays, the lock) and, in one
 * worker of the pod, one that blocks reading the relay stream.
 */


#ifndef _NGX_OMNIBUS_REDIS_H_INCLUDED_
#define _NGX_OMNIBUS_REDIS_H_INCLUDED_


#include <ngx_omnibus_conn.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>


typedef struct ngx_omnibus_redis_s       ngx_omnibus_redis_t;
typedef struct ngx_omnibus_redis_conn_s  ngx_omnibus_redis_conn_t;


/* a reply, or NULL: the connection is gone and the command with it */
typedef void (*ngx_omnibus_redis_reply_pt)(ngx_omnibus_redis_conn_t *rc,
    redisReply *reply, void *data);


typedef enum {
    NGX_OMNIBUS_REDIS_DOWN = 0,
    NGX_OMNIBUS_REDIS_CONNECTING,
    NGX_OMNIBUS_REDIS_SETUP,                 /* AUTH, SELECT, scripts */
    NGX_OMNIBUS_REDIS_READY
} ngx_omnibus_redis_state_e;


/* errors by reason, as counted in the zone */
typedef enum {
    NGX_OMNIBUS_REDIS_ERR_CONNECT = 0,
    NGX_OMNIBUS_REDIS_ERR_TIMEOUT,
    NGX_OMNIBUS_REDIS_ERR_AUTH,
    NGX_OMNIBUS_REDIS_ERR_REPLY
} ngx_omnibus_redis_reason_e;


/* the scripts every connection loads at setup */
typedef enum {
    NGX_OMNIBUS_REDIS_LIMIT = 0,
    NGX_OMNIBUS_REDIS_UNCLAIM,
    NGX_OMNIBUS_REDIS_CONFIRM,
    NGX_OMNIBUS_REDIS_RENEW,
    NGX_OMNIBUS_REDIS_SCRIPTS
} ngx_omnibus_redis_script_e;


typedef struct {
    ngx_queue_t                 queue;       /* in flight, or free */
    ngx_omnibus_redis_reply_pt  handler;     /* NULL: nobody waits */
    void                       *data;
    ngx_msec_t                  deadline;
} ngx_omnibus_redis_cmd_t;


struct ngx_omnibus_redis_conn_s {
    redisAsyncContext          *ac;
    ngx_connection_t           *c;
    ngx_omnibus_redis_t        *rd;
    const char                 *role;        /* for logs */
    ngx_uint_t                  state;
    ngx_msec_t                  timeout;     /* a command's longest */
    ngx_queue_t                 inflight;    /* commands, oldest first */
    ngx_uint_t                  setup;       /* replies still to come */
    ngx_uint_t                  closing;     /* no reconnect */
    ngx_uint_t                  established; /* was ready: not a failure */
    ngx_uint_t                  writing;     /* in hiredis's write */
    ngx_event_t                 timer;       /* the oldest's deadline */
    ngx_event_t                 kill;        /* posted: drop it */
    ngx_omnibus_reconnect_t     reconnect;

    void                      (*ready)(ngx_omnibus_redis_conn_t *rc);
    void                      (*lost)(ngx_omnibus_redis_conn_t *rc);
};


struct ngx_omnibus_redis_s {
    ngx_omnibus_cluster_t       iface;
    ngx_omnibus_zone_t         *zone;

    /* configuration */
    ngx_str_t                   url;         /* as given, for logs */
    u_char                      host[NGX_SOCKADDR_STRLEN + 1];  /* numeric */
    int                         port;
    ngx_uint_t                  db;
    ngx_str_t                   user;
    ngx_str_t                   password;
    ngx_str_t                   prefix;      /* "omnibus:" + zone + ":" */
    ngx_msec_t                  timeout;
    ngx_msec_t                  lock_ttl;
    ngx_msec_t                  block;       /* of a stream read */
    ngx_uint_t                  stream_max;  /* entries the stream keeps */
    ngx_uint_t                  outbox_max;  /* relays kept while down */
    ngx_omnibus_breaker_conf_t  breaker_conf;

    /* worker-local */
    ngx_str_t                   node;
    ngx_log_t                  *log;
    ngx_omnibus_breaker_t       breaker;
    ngx_omnibus_redis_conn_t    cmd;
    ngx_omnibus_redis_conn_t    stream;      /* the reader, or unused */
    ngx_queue_t                 free;        /* ngx_omnibus_redis_cmd_t */
    u_char                      sha[NGX_OMNIBUS_REDIS_SCRIPTS][41];
    uint64_t                    counter;     /* unique members, tokens */

    /* the relay (ngx_omnibus_redis_fanout.c) */
    ngx_queue_t                 outbox;      /* relays, oldest first */
    ngx_queue_t                *unsent;      /* the first not yet sent */
    ngx_uint_t                  noutbox;
    uint64_t                    relay_seq;   /* this worker's, from 1 */
    ngx_str_t                   origin;      /* node/pid/start: unique */
    ngx_event_t                 flush;       /* posted: send the outbox */
    ngx_uint_t                  dropped;     /* since last said */
    time_t                      refused_logged;
    time_t                      dropped_logged;

    /* the lock (ngx_omnibus_redis_lock.c) */
    ngx_event_t                 lock_timer;
    ngx_msec_t                  lock_renewed;  /* last confirmed */
    ngx_uint_t                  lock_pending;
};


extern const char  *ngx_omnibus_redis_scripts[NGX_OMNIBUS_REDIS_SCRIPTS];


/* ngx_omnibus_redis.c: the client */
void ngx_omnibus_redis_conn_init(ngx_omnibus_redis_t *rd,
    ngx_omnibus_redis_conn_t *rc, const char *role, ngx_msec_t timeout);
void ngx_omnibus_redis_connect(ngx_omnibus_redis_conn_t *rc);
void ngx_omnibus_redis_close(ngx_omnibus_redis_conn_t *rc);
ngx_int_t ngx_omnibus_redis_send(ngx_omnibus_redis_conn_t *rc,
    ngx_omnibus_redis_reply_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen, void **cmd);
void ngx_omnibus_redis_forget(void *cmd);
size_t ngx_omnibus_redis_key(ngx_omnibus_redis_t *rd, u_char *buf,
    const char *name, u_char *identity);
ngx_int_t ngx_omnibus_redis_script(ngx_omnibus_redis_conn_t *rc,
    ngx_omnibus_redis_reply_pt handler, void *data,
    ngx_omnibus_redis_script_e script, u_char *key, size_t key_len,
    int n, const char **args, const size_t *args_len, void **cmdp);
ngx_uint_t ngx_omnibus_redis_usable(ngx_omnibus_redis_conn_t *rc);
void ngx_omnibus_redis_error(ngx_omnibus_redis_t *rd,
    ngx_omnibus_redis_reason_e reason);
void ngx_omnibus_redis_fallback(ngx_omnibus_redis_t *rd,
    ngx_omnibus_cluster_feature_e feature);
void ngx_omnibus_redis_refused(ngx_omnibus_redis_conn_t *rc,
    const char *what, redisReply *reply, ngx_uint_t drop);

/* ngx_omnibus_redis_cluster.c: the directive, claims and limits */
char *ngx_omnibus_redis_parse(ngx_conf_t *cf, ngx_omnibus_zone_t *zone,
    ngx_str_t *value, ngx_uint_t n);
ngx_int_t ngx_omnibus_redis_init_process(ngx_omnibus_zone_t *zone,
    ngx_str_t *node, ngx_cycle_t *cycle);
void ngx_omnibus_redis_exit_process(ngx_omnibus_zone_t *zone);

/* ngx_omnibus_redis_fanout.c: the relay between pods */
void ngx_omnibus_redis_relay(ngx_omnibus_zone_t *zone,
    ngx_omnibus_msg_t *msg);
ngx_int_t ngx_omnibus_redis_fanout_init(ngx_omnibus_redis_t *rd,
    ngx_cycle_t *cycle);
void ngx_omnibus_redis_fanout_ready(ngx_omnibus_redis_t *rd);
void ngx_omnibus_redis_fanout_exit(ngx_omnibus_redis_t *rd);

/* ngx_omnibus_redis_lock.c: the cluster's lock */
void ngx_omnibus_redis_lock_init(ngx_omnibus_redis_t *rd);
void ngx_omnibus_redis_lock_exit(ngx_omnibus_redis_t *rd);


#endif /* _NGX_OMNIBUS_REDIS_H_INCLUDED_ */
