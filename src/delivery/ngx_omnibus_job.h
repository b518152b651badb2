
/*
 * Jobs: one delivery of a message to a route, from its first attempt to
 * delivered, dead-lettered, or handed back to the queue.
 */


#ifndef _NGX_OMNIBUS_JOB_H_INCLUDED_
#define _NGX_OMNIBUS_JOB_H_INCLUDED_


struct ngx_omnibus_job_s {
    ngx_queue_t                 queue;       /* waiting, held or free */
    ngx_queue_t                 live;        /* all of the worker's jobs */
    ngx_omnibus_route_t        *route;
    ngx_omnibus_msg_t          *msg;
    ngx_uint_t                  shard;
    ngx_uint_t                  attempt;
    ngx_event_t                 timer;       /* backoff */
    uint64_t                    started;     /* usec, this attempt */
    void                       *data;        /* the sink's */
    unsigned                    probe:1;
    unsigned                    sending:1;   /* the sink has an attempt */
};


void ngx_omnibus_job_start(ngx_omnibus_zone_t *zone, ngx_omnibus_msg_t *msg,
    uint64_t mask);
void ngx_omnibus_job_done(ngx_omnibus_job_t *job, ngx_omnibus_result_e rc,
    u_char *error, size_t len);
void ngx_omnibus_job_exit_process(void);
ngx_msec_t ngx_omnibus_backoff(ngx_msec_t base, ngx_msec_t cap, ngx_uint_t n,
    ngx_uint_t jitter);


#endif /* _NGX_OMNIBUS_JOB_H_INCLUDED_ */
