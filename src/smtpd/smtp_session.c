/* placeholder: being written */
typedef int sluice_placeholder_src_smtpd_smtp_session_c;
