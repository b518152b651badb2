
/*
 * Per-shard queues: high and normal priority FIFOs with watermarks, and
 * the in-flight list of messages being delivered.
 */


#ifndef _NGX_OMNIBUS_QUEUE_H_INCLUDED_
#define _NGX_OMNIBUS_QUEUE_H_INCLUDED_


typedef enum {
    NGX_OMNIBUS_QUEUED = 0,
    NGX_OMNIBUS_DUPLICATE,
    NGX_OMNIBUS_BACKPRESSURE,
    NGX_OMNIBUS_ZONE_FULL,
    NGX_OMNIBUS_RETIRED,
    NGX_OMNIBUS_NOT_STORED,                  /* the store refused its row */
    NGX_OMNIBUS_PENDING                      /* its key's first row is not
                                                committed yet */
} ngx_omnibus_enqueue_rc_e;


ngx_omnibus_enqueue_rc_e ngx_omnibus_enqueue(ngx_omnibus_zone_t *zone,
    ngx_omnibus_offer_t *offer, u_char *id, ngx_log_t *log);
ngx_int_t ngx_omnibus_queue_refuses(ngx_omnibus_zone_t *zone,
    ngx_uint_t shard);
ngx_omnibus_msg_t *ngx_omnibus_msg_create_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_offer_t *offer);
void ngx_omnibus_queue_push_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_shard_t *shard, ngx_omnibus_msg_t *msg);
ngx_omnibus_msg_t *ngx_omnibus_dequeue_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_shard_t *shard, uint64_t limit);
void ngx_omnibus_queue_done(ngx_omnibus_zone_t *zone, ngx_omnibus_msg_t *msg,
    ngx_uint_t slot);
void ngx_omnibus_queue_release_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_msg_t *msg, ngx_uint_t ok, u_char *dedup);
ngx_uint_t ngx_omnibus_queue_unhold_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_shard_t *shard);
ngx_uint_t ngx_omnibus_requeue_locked(ngx_omnibus_shard_t *shard,
    ngx_pid_t only);
ngx_uint_t ngx_omnibus_inflight_elsewhere_locked(ngx_omnibus_shard_t *shard);


#endif /* _NGX_OMNIBUS_QUEUE_H_INCLUDED_ */
