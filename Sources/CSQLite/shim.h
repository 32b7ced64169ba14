// The system SQLite (3.40 on Debian 12), reached only by VigilStore.
#include <sqlite3.h>
