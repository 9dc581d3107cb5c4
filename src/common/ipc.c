/* placeholder: being written */
typedef int sluice_placeholder_src_common_ipc_c;
