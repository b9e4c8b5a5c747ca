//! The database: sea-orm entities and the queries the rest of the program needs.
//! The only place SQL lives.
