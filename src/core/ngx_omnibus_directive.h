
/*
 * What the parsers of every layer's directives share.
 */


#ifndef _NGX_OMNIBUS_DIRECTIVE_H_INCLUDED_
#define _NGX_OMNIBUS_DIRECTIVE_H_INCLUDED_


void ngx_omnibus_conf_error(ngx_conf_t *cf, const char *fmt, ...);


#endif /* _NGX_OMNIBUS_DIRECTIVE_H_INCLUDED_ */
