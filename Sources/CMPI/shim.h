// Thin shim over OpenMPI: the handles below are macros (or addresses of globals) that Swift
// cannot import, so each is returned from an inline function.
#include <mpi.h>

static inline MPI_Comm segdist_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype segdist_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype segdist_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype segdist_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype segdist_int64(void) { return MPI_INT64_T; }
static inline MPI_Op segdist_op_sum(void) { return MPI_SUM; }
static inline MPI_Op segdist_op_max(void) { return MPI_MAX; }
static inline MPI_Op segdist_op_min(void) { return MPI_MIN; }
static inline void *segdist_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Request segdist_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *segdist_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Status *segdist_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
static inline MPI_Errhandler segdist_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int segdist_success(void) { return MPI_SUCCESS; }
static inline int segdist_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
