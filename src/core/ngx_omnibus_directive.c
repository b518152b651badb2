
/*
 * What the parsers of every layer's directives share: an [emerg] that
 * names the directive being parsed, then the problem (NGINX adds the
 * file and line), as in `omnibus_zone: invalid "shards=0": ...`.
 */


#include <ngx_omnibus_core.h>


#define NGX_OMNIBUS_CONF_ERROR_LEN  1024


void
ngx_omnibus_conf_error(ngx_conf_t *cf, const char *fmt, ...)
{
    u_char      *p;
    va_list      args;
    ngx_str_t   *name;
    u_char       buf[NGX_OMNIBUS_CONF_ERROR_LEN];

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    name = cf->args->elts;

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V: %*s", &name[0],
                       (size_t) (p - buf), buf);
}
