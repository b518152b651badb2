
/*
 * ngx_omnibus_module: a sharded message bus inside NGINX.
 *
 * Data flow: publish (body -> topic -> ring -> dedup/ratelimit) -> queue
 * (shared memory) -> notify (owner worker) -> dispatch -> retain ring.
 */


#ifndef _NGX_OMNIBUS_H_INCLUDED_
#define _NGX_OMNIBUS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_md5.h>


#define NGX_OMNIBUS_MAX_SHARDS        256
#define NGX_OMNIBUS_VNODES            160
#define NGX_OMNIBUS_TOPIC_MAX         255
#define NGX_OMNIBUS_KEY_MAX           255
#define NGX_OMNIBUS_CTYPE_MAX         255
#define NGX_OMNIBUS_ID_LEN            36
#define NGX_OMNIBUS_JSON_DEPTH        64
#define NGX_OMNIBUS_TOPIC_STATS       128
#define NGX_OMNIBUS_BUCKETS           16
#define NGX_OMNIBUS_MAX_ROUTES        64
#define NGX_OMNIBUS_ERROR_LEN         96

#define NGX_OMNIBUS_HIGH_PRIORITY     5
#define NGX_OMNIBUS_WAKE_SLOTS        256
#define NGX_OMNIBUS_HOLD_SLOTS        64
#define NGX_OMNIBUS_HOLD_MAX          4096

#define NGX_OMNIBUS_FENCE_ADD         1
#define NGX_OMNIBUS_FENCE_REMOVE      2


/* rejection reasons, in the order of the metric labels */
enum {
    NGX_OMNIBUS_REJ_INVALID_JSON = 0,
    NGX_OMNIBUS_REJ_INVALID_TOPIC,
    NGX_OMNIBUS_REJ_INVALID_PRIORITY,
    NGX_OMNIBUS_REJ_EMPTY,
    NGX_OMNIBUS_REJ_METHOD,
    NGX_OMNIBUS_REJ_TOO_LARGE,
    NGX_OMNIBUS_REJ_BACKPRESSURE,
    NGX_OMNIBUS_REJ_RATE_LIMITED,
    NGX_OMNIBUS_REJ_ZONE_FULL,
    NGX_OMNIBUS_REJ_INVALID_KEY,
    NGX_OMNIBUS_REJ_INVALID_CTYPE,
    NGX_OMNIBUS_REJ_MAX
};


/*
 * A queued message lives in slab chunks: the head holds the metadata and
 * the first bytes, continuation segments hold the rest.  Splitting avoids
 * the power-of-two rounding that would double a 1 KiB message.
 */

typedef struct ngx_omnibus_seg_s  ngx_omnibus_seg_t;

struct ngx_omnibus_seg_s {
    ngx_omnibus_seg_t          *next;
    uint32_t                    len;
    u_char                      data[1];
};


/*
 * A message is referenced by its queue or the in-flight list, by the
 * retain ring and by dead letter entries; it is freed with the last one.
 */

typedef struct {
    ngx_queue_t                 queue;       /* shard queue or in flight */
    ngx_queue_t                 rlink;       /* retain ring */
    uint64_t                    seq;
    uint64_t                    rseq;        /* position in the retain ring */
    uint64_t                    born;        /* wall clock, ms */
    uint64_t                    dispatched;  /* monotonic, us */
    uint64_t                    pending;     /* route slots to deliver to */
    uint64_t                    only;        /* replayed: these slots only */
    ngx_omnibus_seg_t          *more;
    ngx_pid_t                   owner;       /* the worker delivering it */
    uint32_t                    len;         /* payload bytes */
    uint32_t                    head_len;    /* payload bytes in the head */
    uint16_t                    shard;
    uint16_t                    refs;
    u_char                      topic_len;
    u_char                      ctype_len;
    u_char                      key_len;
    u_char                      priority;
    u_char                      json;        /* validated JSON payload */
    u_char                      id[NGX_OMNIBUS_ID_LEN];
    u_char                      data[1];     /* topic ctype key payload */
} ngx_omnibus_msg_t;

#define ngx_omnibus_msg_topic(m)    ((m)->data)
#define ngx_omnibus_msg_ctype(m)    ((m)->data + (m)->topic_len)
#define ngx_omnibus_msg_key(m)                                              \
    ((m)->data + (m)->topic_len + (m)->ctype_len)
#define ngx_omnibus_msg_head(m)                                             \
    ((m)->data + (m)->topic_len + (m)->ctype_len + (m)->key_len)


typedef struct {
    ngx_queue_t                 high;
    ngx_queue_t                 normal;
    ngx_queue_t                 inflight;
    ngx_queue_t                 retain;
    ngx_uint_t                  queued;      /* high + normal */
    ngx_uint_t                  high_queued;
    ngx_uint_t                  ninflight;
    ngx_uint_t                  retained;
    uint64_t                    seq;
    uint64_t                    rseq;
    uint64_t                    fence;       /* last seq before a change */
    ngx_uint_t                  draining;    /* removed, not yet empty */
    ngx_uint_t                  paused;
    ngx_uint_t                  backpressure;
    ngx_uint_t                  concurrency;
    ngx_atomic_t                published;
    ngx_atomic_t                dispatched;
    ngx_atomic_t                retries;
    /* per worker with subscribers: 1 + the last rseq fed to them, or 0 */
    uint64_t                    hold[NGX_OMNIBUS_HOLD_SLOTS];
} ngx_omnibus_shard_t;


typedef struct {
    ngx_pid_t                   pid;
    ngx_atomic_t                count;
} ngx_omnibus_sub_proc_t;


typedef struct {
    uint32_t                    hash;
    ngx_atomic_t                count;
    u_char                      len;
    u_char                      topic[NGX_OMNIBUS_TOPIC_MAX];
} ngx_omnibus_topic_stat_t;


typedef struct {
    ngx_atomic_t                bucket[NGX_OMNIBUS_BUCKETS];
    ngx_atomic_t                count;
    ngx_atomic_t                sum_us;
} ngx_omnibus_histogram_t;


enum {
    NGX_OMNIBUS_BREAKER_CLOSED = 0,
    NGX_OMNIBUS_BREAKER_OPEN,
    NGX_OMNIBUS_BREAKER_HALF_OPEN
};


/* a route's state shared by every worker, in a slot kept over reloads */
typedef struct {
    uint32_t                    identity;    /* hash of pattern and URL */
    ngx_uint_t                  used;
    ngx_uint_t                  breaker;
    ngx_uint_t                  failures;    /* consecutive */
    ngx_uint_t                  successes;   /* consecutive, half-open */
    ngx_msec_t                  opened;      /* ngx_current_msec */
    ngx_atomic_t                delivered;
    ngx_atomic_t                errors;
    ngx_atomic_t                dead;        /* sent to the DLQ */
    ngx_omnibus_histogram_t     latency;
} ngx_omnibus_route_sh_t;


typedef struct {
    ngx_queue_t                 queue;
    ngx_omnibus_msg_t          *msg;
    uint64_t                    failed;      /* wall clock, ms */
    uint32_t                    attempts;
    uint16_t                    slot;
    u_char                      error_len;
    u_char                      error[NGX_OMNIBUS_ERROR_LEN];
} ngx_omnibus_dlq_entry_t;


/* the head of every node of an identity index */
typedef struct {
    ngx_rbtree_node_t           node;
    ngx_queue_t                 queue;       /* LRU, newest at the head */
    u_char                      identity[16];
} ngx_omnibus_node_t;


typedef struct {
    ngx_uint_t                  cap_shards;
    ngx_uint_t                  nshards;
    ngx_atomic_t                ring_version;
    uint64_t                    instance;    /* id prefix: creation ms */
    uint32_t                    instance_rand;

    /* the zone's parameters as of the last (re)load */
    ngx_uint_t                  queue_size;
    ngx_uint_t                  retain;
    ngx_uint_t                  bp_high;     /* messages */
    ngx_uint_t                  bp_low;

    ngx_rbtree_t                dedup;
    ngx_rbtree_node_t           dedup_sentinel;
    ngx_queue_t                 dedup_lru;
    ngx_uint_t                  dedup_entries;

    ngx_rbtree_t                limits;
    ngx_rbtree_node_t           limits_sentinel;
    ngx_queue_t                 limits_lru;

    time_t                      nomem_logged;

    /* a ring change under way: see ngx_omnibus_scale.c */
    ngx_uint_t                  fence;
    ngx_uint_t                  fence_shard;
    ngx_atomic_t                scaled;      /* last autoscale decision */
    ngx_atomic_t                scaled_up;
    ngx_atomic_t                scaled_down;
    ngx_atomic_t                scaled_concurrency_up;
    ngx_atomic_t                scaled_concurrency_down;

    /* a worker with a wake-up in flight: publishers need not write again */
    ngx_atomic_t                wake[NGX_OMNIBUS_WAKE_SLOTS];

    /*
     * Processes with subscribers and how many each has: the gauge sums
     * them, so a crashed process's leave with its entry; a dispatch wakes
     * the others only while nsub_procs is not 0.
     */
    ngx_atomic_t                nsub_procs;
    ngx_omnibus_sub_proc_t      sub_procs[NGX_MAX_PROCESSES];

    ngx_queue_t                 dlq;
    ngx_uint_t                  dlq_size;
    ngx_uint_t                  dlq_max;
    time_t                      dlq_logged;

    ngx_atomic_t                published;
    ngx_atomic_t                deduplicated;
    ngx_atomic_t                unrouted;
    ngx_atomic_t                delivered;
    ngx_atomic_t                dead;
    ngx_atomic_t                dlq_evicted;
    ngx_atomic_t                dlq_replayed;
    ngx_atomic_t                evicted_retained;
    ngx_atomic_t                slow_dropped;
    ngx_atomic_t                sub_missed;
    ngx_atomic_t                rejected[NGX_OMNIBUS_REJ_MAX];
    ngx_atomic_t                topic_other;

    ngx_omnibus_histogram_t     age;
    ngx_omnibus_histogram_t     dispatch;
    ngx_omnibus_route_sh_t      routes[NGX_OMNIBUS_MAX_ROUTES];
    ngx_omnibus_topic_stat_t    topics[NGX_OMNIBUS_TOPIC_STATS];

    ngx_omnibus_shard_t         shards[1];
} ngx_omnibus_sh_t;


typedef struct {
    uint32_t                    hash;
    uint32_t                    shard;
} ngx_omnibus_point_t;


/* the worker's copy of the ring, rebuilt when ring_version moves */
typedef struct {
    ngx_atomic_uint_t           version;
    ngx_uint_t                  npoints;
    ngx_omnibus_point_t        *points;
    struct {
        uint32_t                hash;
        uint32_t                shard;   /* shard + 1, 0 = empty */
    }                          *cache;
} ngx_omnibus_ring_t;


typedef struct ngx_omnibus_route_s  ngx_omnibus_route_t;
typedef struct ngx_omnibus_job_s    ngx_omnibus_job_t;


typedef struct {
    ngx_str_t                   name;
    ngx_shm_zone_t             *shm_zone;
    ngx_slab_pool_t            *shpool;
    ngx_omnibus_sh_t           *sh;

    ngx_uint_t                  shards;
    ngx_uint_t                  min_shards;
    ngx_uint_t                  max_shards;
    ngx_uint_t                  queue_size;
    ngx_uint_t                  concurrency;
    ngx_uint_t                  dlq_size;
    ngx_uint_t                  retain;
    time_t                      dedup_ttl;
    ngx_uint_t                  bp_high;     /* percent */
    ngx_uint_t                  bp_low;
    ngx_msec_t                  autoscale;   /* interval, 0: off */
    ngx_uint_t                  scale_up;    /* percent */
    ngx_uint_t                  scale_down;

    ngx_array_t                 routes;      /* ngx_omnibus_route_t * */
    ngx_uint_t                  route_concurrency;  /* the largest */
    ngx_uint_t                  ordered;     /* a route has concurrency=1 */
    ngx_uint_t                  subscribed;  /* omnibus_subscribe uses it */

    /* worker-local */
    ngx_omnibus_ring_t          ring;
    ngx_event_t                 dispatch;    /* posted to drain our shards */
    ngx_event_t                 fanout;      /* posted to feed subscribers */
    ngx_event_t                 scale_event;
    ngx_omnibus_route_t        *by_slot[NGX_OMNIBUS_MAX_ROUTES];
    ngx_queue_t                 subscribers;
    ngx_uint_t                  nsubscribers;
    ngx_omnibus_sub_proc_t     *sub_proc;    /* ours in sh->sub_procs */
    uint64_t                   *cursor;      /* per shard: rseq fed so far */
} ngx_omnibus_zone_t;


typedef struct {
    ngx_array_t                 zones;       /* ngx_omnibus_zone_t * */
    int                        *wake_fds;    /* one per worker slot */
    ngx_uint_t                  nwake;
} ngx_omnibus_main_conf_t;


typedef struct {
    ngx_http_complex_value_t   *key;
    ngx_uint_t                  rate;        /* requests per window */
    ngx_msec_t                  window;
} ngx_omnibus_limit_conf_t;


typedef enum {
    NGX_OMNIBUS_DELIVERED = 0,
    NGX_OMNIBUS_RETRY,                       /* 408, 429, 5xx, I/O */
    NGX_OMNIBUS_PERMANENT                    /* other 4xx */
} ngx_omnibus_result_e;


/*
 * Sinks deliver one attempt of a job and report back with
 * ngx_omnibus_delivery_done().  Webhooks are the first; Kafka, Redis and
 * PostgreSQL sinks plug in here without touching the dispatcher.
 */
typedef struct {
    const char                 *name;
    ngx_int_t                 (*init_process)(ngx_omnibus_route_t *route,
                                              ngx_cycle_t *cycle);
    void                      (*send)(ngx_omnibus_job_t *job);
    void                      (*cancel)(ngx_omnibus_job_t *job);
    void                      (*exit_process)(ngx_omnibus_route_t *route);
} ngx_omnibus_sink_t;


struct ngx_omnibus_route_s {
    ngx_str_t                   name;        /* metric label */
    ngx_str_t                   pattern;
    ngx_str_t                   url;
    ngx_omnibus_zone_t         *zone;
    ngx_uint_t                  slot;
    uint32_t                    identity;
    ngx_omnibus_sink_t         *sink;

    ngx_http_upstream_srv_conf_t  *upstream;
    ngx_str_t                   host;        /* Host header */
    ngx_str_t                   uri;

    ngx_msec_t                  timeout;
    ngx_uint_t                  retries;
    ngx_msec_t                  backoff;
    ngx_msec_t                  max_backoff;
    ngx_uint_t                  breaker_failures;
    ngx_msec_t                  breaker_timeout;
    ngx_uint_t                  breaker_successes;
    ngx_uint_t                  concurrency; /* 0: the shard's */

    /* worker-local */
    ngx_uint_t                 *active;      /* per shard */
    ngx_queue_t                *waiting;     /* per shard, FIFO */
    ngx_queue_t                 held;        /* by the open breaker */
    ngx_event_t                 breaker_timer;
    ngx_uint_t                  probing;
    ngx_queue_t                 idle;        /* keepalive connections */
    ngx_uint_t                  nidle;
    ngx_uint_t                  next_peer;
    ngx_log_t                  *log;
};


struct ngx_omnibus_job_s {
    ngx_queue_t                 queue;       /* waiting or held */
    ngx_omnibus_route_t        *route;
    ngx_omnibus_msg_t          *msg;
    ngx_uint_t                  shard;
    ngx_uint_t                  attempt;
    ngx_event_t                 timer;       /* backoff */
    uint64_t                    started;     /* usec, this attempt */
    void                       *data;        /* the sink's */
    unsigned                    held:1;
    unsigned                    waiting:1;
    unsigned                    probe:1;
};


enum {
    NGX_OMNIBUS_DEDUP_OFF = 0,
    NGX_OMNIBUS_DEDUP_KEY,
    NGX_OMNIBUS_DEDUP_CONTENT
};


typedef struct {
    ngx_omnibus_zone_t         *publish;
    ngx_omnibus_zone_t         *admin;
    ngx_omnibus_zone_t         *health;
    ngx_omnibus_zone_t         *subscribe;
    ngx_msec_t                  heartbeat;
    size_t                      max_buffer;
    ngx_flag_t                  ready;
    ngx_flag_t                  metrics;

    ngx_http_complex_value_t   *topic;
    ngx_http_complex_value_t   *priority;
    ngx_http_complex_value_t   *idempotency_key;
    ngx_uint_t                  dedup;
    size_t                      max_message_size;
    ngx_flag_t                  json;
    ngx_omnibus_limit_conf_t   *limit;
} ngx_omnibus_loc_conf_t;


/* what one publish request carries from phase to phase */
typedef struct {
    ngx_omnibus_zone_t         *zone;
    ngx_str_t                   topic;
    ngx_str_t                   key;
    ngx_str_t                   ctype;
    ngx_uint_t                  priority;
    ngx_uint_t                  shard;

    u_char                     *body;        /* the collected body */
    size_t                      len;
    size_t                      size;
    unsigned                    collecting:1;
    unsigned                    too_large:1;
    unsigned                    batch:1;

    u_char                      id[NGX_OMNIBUS_ID_LEN];
    unsigned                    has_id:1;
} ngx_omnibus_ctx_t;


/* one message offered to the queue */
typedef struct {
    ngx_str_t                   topic;
    ngx_str_t                   ctype;
    ngx_str_t                   key;         /* idempotency key as given */
    ngx_str_t                   payload;
    u_char                      dedup[16];   /* md5 of the dedup identity */
    unsigned                    dedup_on:1;
    unsigned                    json:1;
    ngx_uint_t                  priority;
    ngx_uint_t                  shard;
} ngx_omnibus_offer_t;


typedef enum {
    NGX_OMNIBUS_QUEUED = 0,
    NGX_OMNIBUS_DUPLICATE,
    NGX_OMNIBUS_BACKPRESSURE,
    NGX_OMNIBUS_ZONE_FULL
} ngx_omnibus_enqueue_rc_e;


/* output: a growing chain of buffers from the request pool */
typedef struct {
    ngx_http_request_t         *r;
    ngx_chain_t                *first;
    ngx_chain_t                *last;
    off_t                       len;
    ngx_int_t                   error;
} ngx_omnibus_out_t;


extern ngx_module_t  ngx_omnibus_module;
extern ngx_uint_t    ngx_omnibus_workers;


/* zone */
char *ngx_omnibus_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_omnibus_zone_t *ngx_omnibus_zone_lookup(ngx_conf_t *cf, ngx_str_t *name);
ngx_omnibus_zone_t *ngx_omnibus_zone_use(ngx_conf_t *cf, ngx_str_t *name);
void *ngx_omnibus_zone_alloc_locked(ngx_omnibus_zone_t *zone, size_t size);
void ngx_omnibus_zone_nomem(ngx_omnibus_zone_t *zone, ngx_log_t *log);
ngx_uint_t ngx_omnibus_shard_owner(ngx_uint_t shard);
ngx_uint_t ngx_omnibus_shards_shown(ngx_omnibus_sh_t *sh);

/* messages */
ngx_omnibus_msg_t *ngx_omnibus_msg_alloc_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_offer_t *offer);
void ngx_omnibus_msg_free_locked(ngx_slab_pool_t *shpool,
    ngx_omnibus_msg_t *msg);
u_char *ngx_omnibus_msg_copy_payload(u_char *dst, ngx_omnibus_msg_t *msg);

/* topics */
ngx_int_t ngx_omnibus_topic_valid(ngx_str_t *topic);
uint32_t ngx_omnibus_topic_hash(u_char *p, size_t len);

/* ring */
ngx_int_t ngx_omnibus_ring_init_process(ngx_omnibus_zone_t *zone,
    ngx_cycle_t *cycle);
ngx_uint_t ngx_omnibus_ring_shard(ngx_omnibus_zone_t *zone, ngx_str_t *topic);

/* json */
ngx_int_t ngx_omnibus_json_valid(u_char *p, size_t len, ngx_str_t *err);
u_char *ngx_omnibus_json_escape(u_char *dst, u_char *src, size_t len);
size_t ngx_omnibus_json_escaped_len(u_char *src, size_t len);

/* limits */
char *ngx_omnibus_rate_limit_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_omnibus_rate_limit(ngx_http_request_t *r,
    ngx_omnibus_zone_t *zone, ngx_omnibus_limit_conf_t *lc,
    time_t *retry_after);
void ngx_omnibus_dedup_identity(ngx_omnibus_offer_t *offer, ngx_uint_t mode);
ngx_int_t ngx_omnibus_dedup_find_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_offer_t *offer, u_char *id);
ngx_int_t ngx_omnibus_dedup_insert_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_offer_t *offer, u_char *id);

/* identity index */
ngx_omnibus_node_t *ngx_omnibus_index_lookup(ngx_rbtree_t *tree,
    u_char *identity);
void ngx_omnibus_index_rbtree_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
void ngx_omnibus_index_insert(ngx_rbtree_t *tree, ngx_queue_t *lru,
    ngx_omnibus_node_t *n, u_char *identity);
void ngx_omnibus_index_delete(ngx_omnibus_zone_t *zone, ngx_rbtree_t *tree,
    ngx_omnibus_node_t *n);

/* body */
ngx_int_t ngx_omnibus_body_init(ngx_conf_t *cf);

/* publish */
ngx_int_t ngx_omnibus_publish_handler(ngx_http_request_t *r);
ngx_int_t ngx_omnibus_publish_variables(ngx_conf_t *cf);

/* queue */
ngx_omnibus_enqueue_rc_e ngx_omnibus_enqueue(ngx_omnibus_zone_t *zone,
    ngx_omnibus_offer_t *offer, u_char *id, ngx_log_t *log);
ngx_int_t ngx_omnibus_queue_refuses(ngx_omnibus_zone_t *zone,
    ngx_uint_t shard);
ngx_omnibus_msg_t *ngx_omnibus_dequeue_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_shard_t *shard, uint64_t limit);
void ngx_omnibus_queue_push_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_shard_t *shard, ngx_omnibus_msg_t *msg);
void ngx_omnibus_msg_unref_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_msg_t *msg);
ngx_uint_t ngx_omnibus_requeue_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_shard_t *shard, ngx_pid_t only);
ngx_uint_t ngx_omnibus_inflight_elsewhere_locked(ngx_omnibus_shard_t *shard);
void ngx_omnibus_retain_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_shard_t *shard, ngx_omnibus_msg_t *msg);
ngx_uint_t ngx_omnibus_retain_held(ngx_omnibus_shard_t *shard, uint64_t rseq);
ngx_uint_t ngx_omnibus_evict_retained_locked(ngx_omnibus_zone_t *zone);

/* notify */
ngx_int_t ngx_omnibus_notify_init_module(ngx_cycle_t *cycle,
    ngx_omnibus_main_conf_t *omcf);
ngx_int_t ngx_omnibus_notify_init_process(ngx_cycle_t *cycle,
    ngx_omnibus_main_conf_t *omcf);
void ngx_omnibus_notify_exit_process(void);
void ngx_omnibus_notify(ngx_omnibus_zone_t *zone, ngx_uint_t shard);
void ngx_omnibus_notify_worker(ngx_omnibus_zone_t *zone, ngx_uint_t worker);
void ngx_omnibus_notify_all(ngx_omnibus_zone_t *zone);
void ngx_omnibus_notify_taken(ngx_omnibus_zone_t *zone);

/* dispatch */
ngx_int_t ngx_omnibus_dispatch_init_process(ngx_cycle_t *cycle,
    ngx_omnibus_main_conf_t *omcf);
void ngx_omnibus_dispatch_exit_process(void);
void ngx_omnibus_dispatch_all(void);

/* routes, deliveries, breaker, dead letters */
char *ngx_omnibus_route_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_omnibus_route_slots_locked(ngx_omnibus_zone_t *zone);
uint64_t ngx_omnibus_route_match(ngx_omnibus_zone_t *zone,
    ngx_omnibus_msg_t *msg);
ngx_int_t ngx_omnibus_route_init_process(ngx_omnibus_zone_t *zone,
    ngx_cycle_t *cycle);
void ngx_omnibus_route_exit_process(ngx_omnibus_zone_t *zone);
ngx_int_t ngx_omnibus_pattern_valid(ngx_str_t *pattern);
ngx_int_t ngx_omnibus_pattern_match(ngx_str_t *pattern, u_char *topic,
    size_t len);
uint64_t ngx_omnibus_now_us(void);
void ngx_omnibus_delivery_start(ngx_omnibus_zone_t *zone,
    ngx_omnibus_msg_t *msg, uint64_t mask);
void ngx_omnibus_delivery_done(ngx_omnibus_job_t *job,
    ngx_omnibus_result_e rc, u_char *error, size_t len);
void ngx_omnibus_delivery_complete(ngx_omnibus_zone_t *zone,
    ngx_omnibus_msg_t *msg, ngx_uint_t slot);
const char *ngx_omnibus_breaker_name(ngx_uint_t state);
ngx_int_t ngx_omnibus_breaker_admit(ngx_omnibus_route_t *route,
    ngx_uint_t *probe, ngx_msec_t *wait);
void ngx_omnibus_breaker_record(ngx_omnibus_route_t *route,
    ngx_uint_t probe, ngx_omnibus_result_e result);
void ngx_omnibus_dlq_add(ngx_omnibus_zone_t *zone, ngx_omnibus_msg_t *msg,
    ngx_uint_t slot, ngx_uint_t attempts, u_char *error, size_t len,
    ngx_log_t *log);
void ngx_omnibus_dlq_list(ngx_omnibus_out_t *out, ngx_omnibus_zone_t *zone,
    ngx_uint_t limit);
ngx_uint_t ngx_omnibus_dlq_purge(ngx_omnibus_zone_t *zone);
ngx_uint_t ngx_omnibus_dlq_replay(ngx_omnibus_zone_t *zone, time_t max_age,
    ngx_pool_t *pool);

/* elastic shards */
char *ngx_omnibus_autoscale_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_omnibus_scale_locked(ngx_omnibus_zone_t *zone, ngx_int_t delta,
    ngx_log_t *log);
ngx_uint_t ngx_omnibus_fence_check_locked(ngx_omnibus_zone_t *zone,
    ngx_log_t *log);
uint64_t ngx_omnibus_fence_limit(ngx_omnibus_zone_t *zone, ngx_uint_t s);
ngx_int_t ngx_omnibus_scale_init_process(ngx_omnibus_zone_t *zone,
    ngx_cycle_t *cycle);

/* subscribers */
char *ngx_omnibus_subscribe_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_omnibus_subscribe_handler(ngx_http_request_t *r);
ngx_int_t ngx_omnibus_subscribe_init_process(ngx_omnibus_zone_t *zone,
    ngx_cycle_t *cycle);
void ngx_omnibus_subscribe_exit_process(ngx_omnibus_zone_t *zone);
void ngx_omnibus_subscribe_wake(ngx_omnibus_zone_t *zone);
void ngx_omnibus_subscribe_feed(ngx_omnibus_zone_t *zone);
void ngx_omnibus_subscribe_reclaim(ngx_omnibus_zone_t *zone);
ngx_uint_t ngx_omnibus_subscribe_count(ngx_omnibus_zone_t *zone);

/* reply */
void ngx_omnibus_out_init(ngx_omnibus_out_t *out, ngx_http_request_t *r);
void ngx_omnibus_out_printf(ngx_omnibus_out_t *out, const char *fmt, ...);
void ngx_omnibus_out_json_str(ngx_omnibus_out_t *out, u_char *p, size_t len);
void ngx_omnibus_out_raw(ngx_omnibus_out_t *out, u_char *p, size_t len);
ngx_int_t ngx_omnibus_out_send(ngx_omnibus_out_t *out, ngx_uint_t status,
    const char *ctype);
ngx_int_t ngx_omnibus_reply_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message, time_t retry_after);
ngx_int_t ngx_omnibus_reply_not_allowed(ngx_http_request_t *r, char *allow);

/* admin, health, metrics */
ngx_int_t ngx_omnibus_admin_handler(ngx_http_request_t *r);
ngx_int_t ngx_omnibus_health_handler(ngx_http_request_t *r);
ngx_int_t ngx_omnibus_metrics_handler(ngx_http_request_t *r);
void ngx_omnibus_histogram_observe(ngx_omnibus_histogram_t *h,
    uint64_t us);


#endif /* _NGX_OMNIBUS_H_INCLUDED_ */
