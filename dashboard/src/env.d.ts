/** Stylesheets are imported for their effect: Vite puts them in the bundle. */
declare module '*.css';
