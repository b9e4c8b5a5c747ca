//! The finance office's console over HTTP: signing in, what each role may do, and the
//! audit rows every change leaves.

mod arrears;
mod fees;
mod followers;
mod paging;
mod payments;
mod signin;
mod students;
