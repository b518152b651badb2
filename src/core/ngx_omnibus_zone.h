
/*
 * The bus zone: its layout in shared memory, shared by every worker and
 * kept over reloads, and the per-process view of it.
 */


#ifndef _NGX_OMNIBUS_ZONE_H_INCLUDED_
#define _NGX_OMNIBUS_ZONE_H_INCLUDED_


/*
 * Bump on any change of the structures below: a reload adopts a zone of
 * the same name and size only if it has this version and these sizes.
 */
#define NGX_OMNIBUS_MAGIC             0x626e6d6f   /* "omnb" */
#define NGX_OMNIBUS_LAYOUT            10

#define NGX_OMNIBUS_WAKE_SLOTS        256
#define NGX_OMNIBUS_HOLD_SLOTS        64

#define NGX_OMNIBUS_FENCE_ADD         1
#define NGX_OMNIBUS_FENCE_REMOVE      2


/* why a publish was refused: counted per reason in the zone */
typedef enum {
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
    NGX_OMNIBUS_REJ_INVALID_BODY,
    NGX_OMNIBUS_REJ_RESIZING,
    NGX_OMNIBUS_REJ_STORE,
    NGX_OMNIBUS_REJ_PENDING,
    NGX_OMNIBUS_REJ_MAX
} ngx_omnibus_rejection_e;


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


typedef enum {
    NGX_OMNIBUS_BREAKER_CLOSED = 0,
    NGX_OMNIBUS_BREAKER_OPEN,
    NGX_OMNIBUS_BREAKER_HALF_OPEN
} ngx_omnibus_breaker_state_e;


/* a circuit breaker's state, shared by every worker */
typedef struct {
    ngx_uint_t                  state;
    ngx_uint_t                  failures;    /* consecutive */
    ngx_uint_t                  successes;   /* consecutive, half-open */
    ngx_msec_t                  opened;      /* ngx_current_msec */
} ngx_omnibus_breaker_sh_t;


/* a route's state shared by every worker, in a slot kept over reloads */
typedef struct {
    uint32_t                    identity;    /* hash of pattern and URL */
    ngx_uint_t                  used;
    ngx_omnibus_breaker_sh_t    breaker;
    ngx_atomic_t                delivered;
    ngx_atomic_t                errors;
    ngx_atomic_t                dead;        /* sent to the DLQ */
    ngx_atomic_t                diverted;    /* kept by the sink instead */
    ngx_atomic_t                replayed;    /* diverted, then delivered */
    ngx_atomic_t                sink_up;     /* the sink's backend answers */
    ngx_atomic_t                sink_failures[4];  /* by the sink's reason */
    ngx_omnibus_histogram_t     latency;
} ngx_omnibus_route_sh_t;


/* the durable store's state, shared by every worker (ngx_omnibus_store.h) */

#define NGX_OMNIBUS_STORE_OPS         4      /* rows by what was written */
#define NGX_OMNIBUS_STORE_REASONS     4      /* errors by why */
#define NGX_OMNIBUS_STORE_PROCS       64

/*
 * What one worker process holds, in a slot of its own: a worker that
 * crashed or exited leaves no count behind (its slot is not summed, and
 * is taken again).
 */
typedef struct {
    ngx_pid_t                   pid;         /* 0: free */
    ngx_atomic_t                up;          /* connected */
    ngx_atomic_t                backlog;     /* rows taken, not committed */
    ngx_atomic_t                connections[3];  /* by state */
} ngx_omnibus_store_proc_t;

typedef struct {
    ngx_atomic_t                state;       /* ngx_omnibus_store_state_e */
    ngx_pid_t                   loader;      /* the worker loading rows */
    ngx_uint_t                  loaded_len;  /* 0: none loaded yet */
    u_char                      loaded[NGX_OMNIBUS_ID_LEN];  /* the last */
    ngx_omnibus_store_proc_t    procs[NGX_OMNIBUS_STORE_PROCS];
    ngx_atomic_t                schema;      /* version found, 0: not yet */
    ngx_atomic_t                generation;
    ngx_atomic_t                recovered;
    ngx_atomic_t                adopted;
    ngx_atomic_t                rows[NGX_OMNIBUS_STORE_OPS];
    ngx_atomic_t                errors[NGX_OMNIBUS_STORE_REASONS];
    ngx_omnibus_breaker_sh_t    breaker;
    ngx_omnibus_histogram_t     commit;
    ngx_omnibus_histogram_t     batch;       /* rows, not microseconds */
} ngx_omnibus_store_sh_t;


/* the cluster backend's state (ngx_omnibus_cluster.h) */

#define NGX_OMNIBUS_CLUSTER_REASONS   4      /* errors by why */
#define NGX_OMNIBUS_STREAM_ID_MAX     48

/*
 * A worker's connections, in its slot: a worker leaving after a reload
 * finds the slot its successor's, and leaves it alone.
 */
typedef struct {
    ngx_pid_t                   pid;
    ngx_atomic_t                up;          /* 1: commands, 2: stream */
} ngx_omnibus_cluster_proc_t;

/* the last sequence read from one sender (a worker of a pod) */
#define NGX_OMNIBUS_CLUSTER_ORIGINS   256
#define NGX_OMNIBUS_ORIGIN_LEN        95

typedef struct {
    uint64_t                    seq;
    time_t                      seen;
    u_char                      len;
    u_char                      name[NGX_OMNIBUS_ORIGIN_LEN];
} ngx_omnibus_cluster_origin_t;

typedef struct {
    ngx_omnibus_cluster_proc_t  procs[NGX_OMNIBUS_HOLD_SLOTS];
    ngx_omnibus_breaker_sh_t    breaker;
    ngx_atomic_t                fallbacks[3];  /* by feature */
    ngx_atomic_t                claimed;
    ngx_atomic_t                duplicates;
    ngx_atomic_t                pending;     /* claimed, not yet durable */
    ngx_atomic_t                limited;
    ngx_atomic_t                relayed;     /* sent to the other pods */
    ngx_atomic_t                relay_dropped;  /* the outbox overflowed */
    ngx_atomic_t                received;    /* from the other pods */
    ngx_atomic_t                resent;      /* received again: skipped */
    ngx_atomic_t                errors[NGX_OMNIBUS_CLUSTER_REASONS];
    ngx_pid_t                   leader;      /* holds the lock, or 0 */
    ngx_atomic_t                lock_known;  /* whether any pod holds it */
    ngx_atomic_t                lock_acquired;
    ngx_atomic_t                lock_lost;
    ngx_uint_t                  stream_last_len;  /* 0: none received */
    u_char                      stream_last[NGX_OMNIBUS_STREAM_ID_MAX];

    /* the pod's reader's, kept for its successor if it dies */
    ngx_omnibus_cluster_origin_t  origins[NGX_OMNIBUS_CLUSTER_ORIGINS];
} ngx_omnibus_cluster_sh_t;


/* how far a consumer is behind in one partition of its input */
#define NGX_OMNIBUS_INPUT_LAGS        64

typedef struct {
    ngx_atomic_t                lag;
    int32_t                     partition;
    u_char                      topic_len;   /* 0: unused */
    u_char                      topic[249];  /* Kafka's longest */
} ngx_omnibus_lag_t;


/* a route's claim on a slot: what it is, and which slot it got */
typedef struct {
    uint32_t                    identity;
    ngx_uint_t                  index;
} ngx_omnibus_slot_t;


typedef struct {
    uint32_t                    magic;       /* NGX_OMNIBUS_MAGIC */
    uint32_t                    layout;      /* NGX_OMNIBUS_LAYOUT */
    uint32_t                    sh_size;     /* of this structure */
    uint32_t                    shard_size;
    uint32_t                    msg_size;

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

    /* replaced by a zone of another size in a reload: take nothing more */
    ngx_uint_t                  retired;

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

    ngx_atomic_t                worker_starts;  /* respawns included */
    ngx_atomic_t                published;
    ngx_atomic_t                deduplicated;
    ngx_atomic_t                unrouted;
    ngx_atomic_t                delivered;
    ngx_atomic_t                dead;
    ngx_atomic_t                completed;   /* done with every route */
    ngx_atomic_t                dlq_evicted;
    ngx_atomic_t                dlq_replayed;
    ngx_atomic_t                evicted_retained;
    ngx_atomic_t                slow_dropped;
    ngx_atomic_t                sub_missed;
    ngx_atomic_t                rejected[NGX_OMNIBUS_REJ_MAX];
    ngx_atomic_t                topic_other;

    /* what backends bring in (Kafka consumers), for metrics and status */
    ngx_atomic_t                input_consumed;
    ngx_atomic_t                input_up;
    ngx_atomic_t                input_failures[4];
    ngx_omnibus_lag_t           input_lag[NGX_OMNIBUS_INPUT_LAGS];

    ngx_omnibus_store_sh_t      store;
    ngx_omnibus_cluster_sh_t    cluster;

    ngx_omnibus_histogram_t     age;
    ngx_omnibus_histogram_t     dispatch;
    ngx_omnibus_route_sh_t      routes[NGX_OMNIBUS_MAX_ROUTES];
    ngx_omnibus_topic_stat_t    topics[NGX_OMNIBUS_TOPIC_STATS];

    ngx_omnibus_shard_t         shards[1];
} ngx_omnibus_sh_t;


struct ngx_omnibus_zone_s {
    ngx_str_t                   name;
    ngx_cycle_t                *cycle;       /* that this zone is of */
    ngx_omnibus_sh_t           *retiring;    /* an old zone we replace */
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

    ngx_array_t                 slots;       /* ngx_omnibus_slot_t * */
    ngx_array_t                 routes;      /* ngx_omnibus_route_t * */
    ngx_uint_t                  route_concurrency;  /* the largest */
    ngx_uint_t                  ordered;     /* a route has concurrency=1 */
    ngx_uint_t                  subscribed;  /* a subscribe location uses it */
    ngx_array_t                 inputs;      /* the backends' consumers */
    ngx_omnibus_store_t        *store;       /* durable rows, or NULL */
    ngx_omnibus_cluster_t      *cluster;     /* other pods, or NULL */

    /* worker-local */
    ngx_omnibus_ring_t          ring;
    ngx_event_t                 dispatch;    /* posted to drain our shards */
    ngx_event_t                 fanout;      /* posted to feed subscribers */
    uint64_t                    fanout_rest; /* no round before (us) */
    ngx_event_t                 scale_event;
    ngx_uint_t                  starved;     /* a job could not be made */
    ngx_omnibus_route_t        *by_slot[NGX_OMNIBUS_MAX_ROUTES];
    ngx_queue_t                 subscribers;
    ngx_uint_t                  nsubscribers;
    ngx_omnibus_sub_proc_t     *sub_proc;    /* ours in sh->sub_procs */
    uint64_t                   *cursor;      /* per shard: rseq fed so far */
};


typedef struct {
    ngx_array_t                 zones;       /* ngx_omnibus_zone_t * */
    ngx_str_t                   node;        /* omnibus_node */
    int                        *wake_fds;    /* one per worker slot */
    ngx_uint_t                  nwake;
} ngx_omnibus_main_conf_t;


extern ngx_uint_t  ngx_omnibus_workers;


/* shard s belongs to worker s mod worker_processes */
#define ngx_omnibus_shard_owner(s)  ((s) % ngx_omnibus_workers)


ngx_omnibus_zone_t *ngx_omnibus_zone_create(ngx_conf_t *cf);
char *ngx_omnibus_zone_parse(ngx_conf_t *cf, ngx_omnibus_zone_t *zone,
    ngx_str_t *value, ngx_uint_t n, ssize_t *size);
char *ngx_omnibus_zone_shm(ngx_conf_t *cf, ngx_omnibus_zone_t *zone,
    size_t size, void *tag);
ngx_int_t ngx_omnibus_zone_add_slot(ngx_omnibus_zone_t *zone,
    ngx_omnibus_slot_t *slot);
void ngx_omnibus_zone_nomem(ngx_omnibus_zone_t *zone, ngx_log_t *log);
void ngx_omnibus_zone_commit(ngx_omnibus_zone_t *zone);
ngx_uint_t ngx_omnibus_shards_shown(ngx_omnibus_sh_t *sh);
ngx_omnibus_store_proc_t *ngx_omnibus_store_proc(ngx_omnibus_zone_t *zone);
void ngx_omnibus_store_totals(ngx_omnibus_sh_t *sh,
    ngx_omnibus_store_proc_t *total);
ngx_uint_t ngx_omnibus_cluster_up(ngx_omnibus_sh_t *sh);


#endif /* _NGX_OMNIBUS_ZONE_H_INCLUDED_ */
