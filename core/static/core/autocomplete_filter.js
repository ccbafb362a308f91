'use strict';
// Picking an object in an autocomplete list filter reloads the list filtered by it
// (clearing the box removes the filter); the page number is dropped.
{
    const $ = django.jQuery;
    $(function() {
        $('select.autocomplete-filter').on('change', function() {
            const params = new URLSearchParams(window.location.search);
            const name = this.dataset.filterParameter;
            if (this.value) {
                params.set(name, this.value);
            } else {
                params.delete(name);
            }
            params.delete('p');
            window.location.search = params.toString();
        });
    });
}
