
/*
 * The core layer: the bus in shared memory, no HTTP.  Calls go down only:
 * the delivery, backend and HTTP layers use this one, never the reverse.
 */


#ifndef _NGX_OMNIBUS_CORE_H_INCLUDED_
#define _NGX_OMNIBUS_CORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_md5.h>


#define NGX_OMNIBUS_MAX_SHARDS        256
#define NGX_OMNIBUS_MAX_ROUTES        64
#define NGX_OMNIBUS_TOPIC_MAX         255
#define NGX_OMNIBUS_KEY_MAX           255
#define NGX_OMNIBUS_CTYPE_MAX         255
#define NGX_OMNIBUS_HIGH_PRIORITY     5

/* a state worth a warning is logged once per this many seconds */
#define NGX_OMNIBUS_LOG_THROTTLE      10


typedef struct ngx_omnibus_zone_s   ngx_omnibus_zone_t;
typedef struct ngx_omnibus_route_s  ngx_omnibus_route_t;
typedef struct ngx_omnibus_store_s  ngx_omnibus_store_t;
typedef struct ngx_omnibus_cluster_s  ngx_omnibus_cluster_t;


#include <ngx_omnibus_directive.h>
#include <ngx_omnibus_topic.h>
#include <ngx_omnibus_pattern.h>
#include <ngx_omnibus_index.h>
#include <ngx_omnibus_stats.h>
#include <ngx_omnibus_msg.h>
#include <ngx_omnibus_ring.h>
#include <ngx_omnibus_zone.h>
#include <ngx_omnibus_store.h>
#include <ngx_omnibus_retain.h>
#include <ngx_omnibus_dedup.h>
#include <ngx_omnibus_limit.h>
#include <ngx_omnibus_cluster.h>
#include <ngx_omnibus_notify.h>
#include <ngx_omnibus_fanout.h>
#include <ngx_omnibus_queue.h>
#include <ngx_omnibus_scale.h>
#include <ngx_omnibus_json.h>


#endif /* _NGX_OMNIBUS_CORE_H_INCLUDED_ */
