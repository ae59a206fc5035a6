"""The end-to-end task suite, unchanged, through every door into replicas behind a
round-robin proxy (fixtures in this package's ``conftest``). The workflow suite has its own file,
so the two run in separate test workers. The killed-gateway test is left out: ``test_replicas``
kills the leader of three instead."""

from tests.e2e.test_tasks import (  # noqa: F401
    test_another_users_task_is_not_found,
    test_delete_while_running_stops_the_process,
    test_env_values_are_secret,
    test_invalid_input_is_400_naming_the_field,
    test_non_zero_exit_code_fails_the_task,
    test_status_filter_limit_and_cursor,
    test_success_with_output_and_logs,
    test_timeout_fails_the_task_with_reason_timeout,
    test_wait_sends_progress_and_log_lines_over_mcp,
)
