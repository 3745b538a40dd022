//! Reusable parts of the pages: navigation, status badges, the device's object tree, its live
//! event feed and audit history, and the CSV import.

pub mod audit;
pub mod badges;
pub mod import;
pub mod live;
pub mod nav;
pub mod objects;
