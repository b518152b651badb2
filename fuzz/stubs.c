
/*
 * What the linker asks of nginx.c (main() is left out): NGINX's cycle and
 * process code refer to these, and the harnesses never run a cycle, so
 * they are never reached.  Nothing else is stubbed.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <stdlib.h>


ngx_module_t  ngx_core_module;


char **
ngx_set_environment(ngx_cycle_t *cycle, ngx_uint_t *last)
{
    abort();
}


ngx_pid_t
ngx_exec_new_binary(ngx_cycle_t *cycle, char *const *argv)
{
    abort();
}


ngx_cpuset_t *
ngx_get_cpu_affinity(ngx_uint_t n)
{
    abort();
}
