
/*
 * The webhook sink: routes with http:// URLs.
 */


#ifndef _NGX_OMNIBUS_SINK_HTTP_H_INCLUDED_
#define _NGX_OMNIBUS_SINK_HTTP_H_INCLUDED_


#include <ngx_omnibus_delivery.h>


extern ngx_omnibus_sink_t  ngx_omnibus_sink_http;


#endif /* _NGX_OMNIBUS_SINK_HTTP_H_INCLUDED_ */
