/* placeholder: being written */
typedef int sluice_placeholder_src_common_addr_c;
