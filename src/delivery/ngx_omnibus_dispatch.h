
/*
 * The shard worker loop: each worker drains the shards it owns.
 */


#ifndef _NGX_OMNIBUS_DISPATCH_H_INCLUDED_
#define _NGX_OMNIBUS_DISPATCH_H_INCLUDED_


ngx_int_t ngx_omnibus_dispatch_init_process(ngx_cycle_t *cycle,
    ngx_omnibus_main_conf_t *omcf);
void ngx_omnibus_dispatch_exit_process(void);


#endif /* _NGX_OMNIBUS_DISPATCH_H_INCLUDED_ */
