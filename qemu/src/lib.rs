//! Starting and driving a QEMU guest.
