/* placeholder: being written */
typedef int sluice_placeholder_src_queue_spool_c;
