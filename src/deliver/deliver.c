/* placeholder: being written */
typedef int sluice_placeholder_src_deliver_deliver_c;
