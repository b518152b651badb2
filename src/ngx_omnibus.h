
/*
 * ngx_omnibus_module: every layer's header, for the module definition
 * at the top.  A file below includes its own layer's header only.
 */


#ifndef _NGX_OMNIBUS_H_INCLUDED_
#define _NGX_OMNIBUS_H_INCLUDED_


#include <ngx_omnibus_core.h>
#include <ngx_omnibus_delivery.h>
#include <ngx_omnibus_conn.h>
#include <ngx_omnibus_sink_http.h>
#if (NGX_OMNIBUS_HAVE_KAFKA)
#include <ngx_omnibus_sink_kafka.h>
#include <ngx_omnibus_kafka_consume.h>
#endif
#if (NGX_OMNIBUS_HAVE_PG)
#include <ngx_omnibus_pg_store.h>
#endif
#if (NGX_OMNIBUS_HAVE_REDIS)
#include <ngx_omnibus_redis.h>
#endif
#include <ngx_omnibus_http.h>


#endif /* _NGX_OMNIBUS_H_INCLUDED_ */
