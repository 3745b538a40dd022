//! Reusable parts of the pages: navigation, status badges, the device's diagnostics, object
//! tree, live event feed and audit history, the CSV import, and the SVG charts.

pub mod audit;
pub mod badges;
pub mod diagnosis;
pub mod import;
pub mod live;
pub mod nav;
pub mod objects;
