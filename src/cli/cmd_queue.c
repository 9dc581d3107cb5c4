/* placeholder: being written */
typedef int sluice_placeholder_src_cli_cmd_queue_c;
