
/*
 * The delivery layer: dispatching messages from the shard queues to the
 * routes that match them, jobs with retries behind circuit breakers, and
 * the dead letter queue.  Sinks (webhooks, later Kafka and others) plug
 * in through ngx_omnibus_sink.h; this layer includes no sink's header.
 */


#ifndef _NGX_OMNIBUS_DELIVERY_H_INCLUDED_
#define _NGX_OMNIBUS_DELIVERY_H_INCLUDED_


#include <ngx_omnibus_core.h>


typedef struct ngx_omnibus_job_s  ngx_omnibus_job_t;


#include <ngx_omnibus_breaker.h>
#include <ngx_omnibus_sink.h>
#include <ngx_omnibus_route.h>
#include <ngx_omnibus_job.h>
#include <ngx_omnibus_dlq.h>
#include <ngx_omnibus_dispatch.h>


#endif /* _NGX_OMNIBUS_DELIVERY_H_INCLUDED_ */
